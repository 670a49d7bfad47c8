// discoro status page: polls the JSON API every POLL_MS (or the poll_sec the data carries:
// a computation's web monitor, discoro.httpd) and redraws the page's table.
// Everything is built with textContent (never innerHTML): names and arguments come from
// user code. Sorting: click a column header; click again to reverse.
"use strict";

const POLL_MS = 2000;
const params = new URLSearchParams(window.location.search);
const nodeAddr = params.get("addr") || params.get("host") || ""; // node.html?host= (httpd)

async function getJSON(url, options) {
  const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.status + " " + response.statusText);
  return data;
}

// Changes need the server's CSRF token, which only a page of the same origin can read.
let csrfToken = null;
async function csrf() {
  if (csrfToken === null) csrfToken = (await getJSON("/api/session")).csrf;
  return csrfToken;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleTimeString() : "";
}

// a process's state, and how long its event loop has been stuck in user code
function procState(proc) {
  const state = proc.state || "";
  return proc.stuck ? `${state} (stuck ${proc.stuck} s)` : state;
}

function percent(value) {
  return typeof value === "number" ? value.toFixed(1) : "";
}

// -- sortable tables --------------------------------------------------------------------

const sorting = { key: null, dir: 1 };

function setupSorting(table, redraw) {
  for (const th of table.querySelectorAll("th[data-key]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      sorting.dir = sorting.key === key ? -sorting.dir : 1;
      sorting.key = key;
      for (const other of table.querySelectorAll("th")) other.classList.remove("asc", "desc");
      th.classList.add(sorting.dir > 0 ? "asc" : "desc");
      redraw();
    });
  }
}

function sorted(rows) {
  if (!sorting.key) return rows;
  const key = sorting.key;
  return rows.slice().sort((a, b) => {
    const x = a[key], y = b[key];
    const order = typeof x === "number" && typeof y === "number"
      ? x - y : String(x ?? "").localeCompare(String(y ?? ""), undefined, { numeric: true });
    return order * sorting.dir;
  });
}

function fill(tbody, rows, columns, empty) {
  tbody.replaceChildren();
  if (!rows.length) {
    const tr = el("tr", null, { class: "empty" });
    tr.appendChild(el("td", empty, { colspan: String(columns) }));
    tbody.appendChild(tr);
  }
  for (const row of rows) tbody.appendChild(row);
}

function cell(text, numeric) {
  return el("td", text, numeric ? { class: "num" } : {});
}

function showScheduler(scheduler) {
  if (!scheduler) return;
  document.getElementById("scheduler").textContent =
    "scheduler " + (scheduler.name || "") + " at " + scheduler.location +
    (scheduler.computation
      ? ", computation of " + (scheduler.computation_name || scheduler.computation)
      : ", idle") +
    (scheduler.queued ? ", " + scheduler.queued + " queued" : "");
}

function showError(error) {
  document.getElementById("updated").textContent = "(" + error.message + ")";
}

// A computation's web monitor (discoro.httpd) sends its refresh period (poll_sec): show it in
// the header as a field the user can change (POST /set_poll_sec); the scheduler's page does not.
function showPollControl(seconds) {
  if (typeof seconds !== "number") return;
  let input = document.getElementById("poll-sec");
  if (!input) {
    const label = el("label", "refresh every ", { id: "poll-control" });
    input = el("input", null, { id: "poll-sec", type: "number", min: "1", step: "1" });
    label.appendChild(input);
    label.appendChild(document.createTextNode(" s"));
    document.querySelector("header").appendChild(label);
    input.addEventListener("change", async () => {
      try {
        const data = await getJSON("/set_poll_sec", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-Discoro-CSRF": await csrf() },
          body: JSON.stringify({ timeout: Number(input.value) }),
        });
        if (lastData) lastData.poll_sec = data.poll_sec; // the next poll waits that long
      } catch (error) {
        showError(error);
      }
    });
  }
  if (document.activeElement !== input) input.value = String(seconds);
}

function showUpdated() {
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

// -- pages ------------------------------------------------------------------------------

const pages = {
  cluster: {
    url: () => "/api/status",
    table: "nodes",
    draw(data) {
      const t = data.totals || {};
      document.getElementById("totals").textContent =
        `${t.nodes ?? 0} nodes, ${t.procs ?? 0} processes; coroutines submitted ` +
        `${t.submitted ?? 0}, done ${t.done ?? 0}, running ${t.running ?? 0}`;
      showScheduler(data.scheduler);
      const rows = sorted(data.nodes || []).map((node) => {
        const tr = el("tr", null, { "data-addr": node.addr });
        const link = el("a", node.addr, { href: "/node?addr=" + encodeURIComponent(node.addr) });
        tr.appendChild(el("td")).appendChild(link);
        tr.appendChild(cell(node.name));
        tr.appendChild(cell(node.procs, true));
        tr.appendChild(cell(node.state));
        tr.appendChild(cell(percent(node.cpu), true));
        tr.appendChild(cell(percent(node.memory), true));
        tr.appendChild(cell(node.submitted, true));
        tr.appendChild(cell(node.done, true));
        tr.appendChild(cell(node.running, true));
        tr.appendChild(cell(when(node.updated)));
        return tr;
      });
      fill(document.querySelector("#nodes tbody"), rows, 10, "no nodes yet");
    },
  },
  node: {
    url: () => "/api/node/" + encodeURIComponent(nodeAddr),
    table: "procs",
    draw(data) {
      const node = data.node || {};
      document.getElementById("title").textContent = "node " + nodeAddr;
      document.getElementById("summary").textContent = node.addr
        ? `${node.name || node.addr}: ${node.state || ""}, cpu ${percent(node.cpu)} %, ` +
          `memory ${percent(node.memory)} %, disk ${percent(node.disk)} %`
        : "";
      const rows = sorted(data.procs || []).map((proc) => {
        const tr = el("tr", null, { "data-location": proc.location });
        const href = "/process?location=" + encodeURIComponent(proc.location);
        tr.appendChild(el("td")).appendChild(el("a", proc.location, { href }));
        tr.appendChild(cell(proc.name));
        tr.appendChild(cell(procState(proc)));
        tr.appendChild(cell(proc.submitted, true));
        tr.appendChild(cell(proc.done, true));
        tr.appendChild(cell(proc.running, true));
        tr.appendChild(cell(when(proc.updated)));
        return tr;
      });
      fill(document.querySelector("#procs tbody"), rows, 7, "no processes");
    },
  },
  process: {
    url: () => "/api/proc/" + encodeURIComponent(params.get("location") || ""),
    table: "coros",
    checked: new Set(), // coroutine ids ticked by the user, kept across redraws
    draw(data) {
      const page = pages.process;
      document.getElementById("title").textContent = "process " + (params.get("location") || "");
      document.getElementById("summary").textContent =
        `${data.name || ""} on node ${data.node || ""}: ${procState(data)}; submitted ` +
        `${data.submitted ?? 0}, done ${data.done ?? 0}, running ${data.running ?? 0}`;
      const coros = data.coros || [];
      const present = new Set(coros.map((c) => c.coro));
      for (const id of [...page.checked]) if (!present.has(id)) page.checked.delete(id);
      const rows = sorted(coros).map((coro) => {
        const tr = el("tr", null, { "data-coro": coro.coro });
        const box = el("input", null, { type: "checkbox", class: "select", value: coro.coro });
        box.checked = page.checked.has(coro.coro);
        box.addEventListener("change", () => {
          if (box.checked) page.checked.add(coro.coro); else page.checked.delete(coro.coro);
        });
        tr.appendChild(el("td")).appendChild(box);
        tr.appendChild(cell(coro.coro));
        tr.appendChild(cell(coro.args));
        tr.appendChild(cell(when(coro.start_time)));
        return tr;
      });
      fill(document.querySelector("#coros tbody"), rows, 4, "no running coroutines");
    },
    setup() {
      const page = pages.process;
      document.getElementById("select-all").addEventListener("change", (event) => {
        for (const box of document.querySelectorAll("#coros input.select")) {
          box.checked = event.target.checked;
          if (box.checked) page.checked.add(box.value); else page.checked.delete(box.value);
        }
      });
      document.getElementById("terminate").addEventListener("click", async () => {
        const message = document.getElementById("message");
        const coros = [...page.checked];
        if (!coros.length) {
          message.textContent = "select coroutines first";
          return;
        }
        try {
          const data = await getJSON("/api/terminate", {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-Discoro-CSRF": await csrf() },
            body: JSON.stringify({ coros }),
          });
          message.className = "";
          message.textContent = "terminated: " + (data.terminated.join(", ") || "none");
          page.checked.clear();
          refresh();
        } catch (error) {
          message.className = "error";
          message.textContent = "could not terminate: " + error.message;
        }
      });
    },
  },
};

const current = pages[document.body.dataset.page];
let lastData = null;

async function refresh() {
  try {
    lastData = await getJSON(current.url());
    current.draw(lastData);
    showPollControl(lastData.poll_sec);
    showUpdated();
  } catch (error) {
    showError(error);
  }
}

if (current) {
  setupSorting(document.getElementById(current.table), () => lastData && current.draw(lastData));
  if (current.setup) current.setup();
  const poll = async () => {
    await refresh();
    const seconds = lastData && lastData.poll_sec;
    window.setTimeout(poll, typeof seconds === "number" ? seconds * 1000 : POLL_MS);
  };
  poll();
}
