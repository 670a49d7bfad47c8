"""Shipping files with a computation: a data file and a Python module as components.

A component may be a path to a file (the file is copied into every server process's working
directory) or a module object (its ``.py`` source file travels the same way; it is not
imported for you). The working directory is on the server's ``sys.path``, so the remote
coroutine opens the data file by its bare name and imports the module by its name. When the
computation closes, the servers delete them again.

This program writes the module and the data file into a temporary directory first (a real
program would ship files it already has). Runs standalone: it starts its own node with two
server processes on loopback.
"""

import importlib
import os
import secrets
import socket
import sys
import tempfile

import discoro

MODULE_SOURCE = '''
"""wordstats: a helper module the computation ships to the servers."""

def count_words(text):
    counts = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?")
        counts[word] = counts.get(word, 0) + 1
    return counts
'''

DATA = "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.\n"


def analyse(data_name, client, coro=None):
    # runs on a server process: the shipped files are in its working directory
    import os

    import wordstats

    with open(data_name) as data:
        counts = wordstats.count_words(data.read())
    client.send((str(coro.location), os.path.basename(os.getcwd()), counts))
    yield coro.sleep(0)


def client(module, data_path, coro=None):
    computation = discoro.Computation([analyse, module, data_path])
    if (yield computation.schedule()) != 0:
        raise RuntimeError("could not schedule the computation")
    for _ in range(100):  # wait (at most 5 s) until both processes are ready
        if len((yield computation.procs())) >= 2:
            break
        yield coro.sleep(0.05)
    rcoros = yield computation.run_procs(analyse, os.path.basename(data_path), coro)
    answers = []
    for _ in rcoros:
        where, workdir, counts = yield coro.receive(timeout=10)
        print(f"  {where} (in {workdir}) counted {sum(counts.values())} words")
        answers.append(counts)
    yield computation.close()
    return answers


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    secret, port = secrets.token_hex(16), free_udp_port()
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "wordstats.py"), "w") as source:
            source.write(MODULE_SOURCE)
        data_path = os.path.join(folder, "story.txt")
        with open(data_path, "w") as data:
            data.write(DATA)
        sys.path.insert(0, folder)
        wordstats = importlib.import_module("wordstats")  # the module object is the component
        with discoro.local_cluster(procs=2, udp_port=port, secret=secret):
            discoro.Scheduler(node="127.0.0.1", udp_port=port, secret=secret)
            answers = discoro.Coro(client, wordstats, data_path).value(60)
            discoro.AsynCoro.instance().finish()
    if not answers or any(counts != answers[0] for counts in answers):
        raise SystemExit("the servers disagree")
    print(
        f"client_files: {len(answers)} processes agree: 'the' x{answers[0]['the']}, "
        f"'fox' x{answers[0]['fox']}"
    )
