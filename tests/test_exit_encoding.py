"""How a coroutine's end travels to a remote monitor (`discoro.net.handlers.encode_exit`,
`exit_notice`): a normal end as its value alone (field ``sv``, issue 9), a value that does
not pickle as its type, an exception with its traceback text; and what a monitor gets from
each, a payload that does not unpickle there included."""

from __future__ import annotations

import pickle

from discoro.errors import MonitorException, RemoteError
from discoro.net.handlers import encode_exit, exit_notice


class Observed:
    """Stands for the ended coroutine (what `encode_exit` reads: ``name`` and ``id``)."""

    name, id = "job", 42


def test_a_normal_end_travels_as_its_value_alone() -> None:
    fields, payload = encode_exit(Observed(), (StopIteration, {"answer": [1, 2]}))  # type: ignore[arg-type]
    assert fields == {"on": "job", "oi": 42, "sv": 1}
    assert pickle.loads(payload) == {"answer": [1, 2]}  # no (StopIteration, ...) around it
    notice = exit_notice("job", fields, payload)
    assert isinstance(notice, MonitorException)
    assert notice.args == ("job", (StopIteration, {"answer": [1, 2]}))
    assert notice.remote_traceback is None


class Unpicklable:
    """Its class pickles (by reference), its instances do not."""

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("not this one")


def test_a_value_that_does_not_pickle_travels_as_its_type_or_its_repr() -> None:
    fields, payload = encode_exit(Observed(), (StopIteration, Unpicklable()))  # type: ignore[arg-type]
    assert "sv" not in fields and fields["vt"] == "Unpicklable"
    assert exit_notice("job", fields, payload).args[1] == (StopIteration, Unpicklable)

    class Local(Unpicklable):  # a class made in a function does not pickle either
        pass

    value = Local()
    fields, payload = encode_exit(Observed(), (StopIteration, value))  # type: ignore[arg-type]
    assert "sv" not in fields and fields["vt"].endswith("Local")
    assert exit_notice("job", fields, payload).args[1] == (StopIteration, repr(value))


def test_an_exception_travels_with_its_traceback_text() -> None:
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        info = (ValueError, exc, exc.__traceback__)
    fields, payload = encode_exit(Observed(), info)  # type: ignore[arg-type]
    assert "sv" not in fields and fields["tn"] == "ValueError" and fields["tm"] == "bad input"
    notice = exit_notice("job", fields, payload)
    kind, value = notice.args[1]
    assert kind is ValueError and str(value) == "bad input"
    assert notice.remote_traceback is not None and "bad input" in notice.remote_traceback


def test_a_value_that_does_not_unpickle_at_the_monitor_is_a_remote_error() -> None:
    fields = {"on": "job", "oi": 42, "sv": 1}
    broken = pickle.dumps(("a", "value"))[:-3]  # truncated: unpickling fails
    kind, error = exit_notice("job", fields, broken).args[1]
    assert kind is RemoteError and isinstance(error, RemoteError)
