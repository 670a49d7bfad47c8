"""The per-computation namespace of a server process (DESIGN decision 8, reference 3.6).

Client code is simulated by executing source text as module ``__main__`` (or as a user module
the server does not have), so cloudpickle ships it by value exactly as from a real client;
one test uses a real client process for pickling by reference in both directions.
"""

from __future__ import annotations

import base64
import pickle
import sys
from typing import TYPE_CHECKING, Any

import cloudpickle
import pytest

import discoro
from discoro.cluster.namespace import Namespace, ShippingError
from discoro.cluster.protocol import ShippedFile
from discoro.cluster.rebinding import FILLS_CLASS
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(30)

CLIENT = """
import functools
counter = 0
data = None
time = "a client global that shadows the preset"

def setup(value):
    global data
    data = value

def bump(n=1, *, by=1):
    global counter
    counter += n * by
    return counter

def logged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper

@logged
def snapshot():
    return data, counter, time

def make_reader(offset):
    def reader():
        return counter + offset
    return reader

class Base:
    def hello(self):
        return "base"

class Point(Base):
    def __init__(self, x, y):
        self.x, self.y = x, y
    def hello(self):
        return "point/" + super().hello()
    def norm(self):
        return square(self.x) + square(self.y)
    @staticmethod
    def total():
        return counter
    @classmethod
    def origin(cls):
        return cls(0, 0)
    @property
    def label(self):
        return f"{data}:{self.x}"

def square(v):
    return v * v

def uses_module():
    import shipmod
    return shipmod.value() + counter
"""


def client(module: str = "__main__") -> dict[str, Any]:
    names: dict[str, Any] = {"__name__": module}
    exec(CLIENT, names)
    return names


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[Namespace]:
    main = sys.modules["__main__"]
    ns = Namespace(tmp_path / "work")
    try:
        yield ns
    finally:
        ns.close()
        assert sys.modules["__main__"] is main


def ship(names: dict[str, Any], *wanted: str) -> bytes:
    return cloudpickle.dumps({name: names[name] for name in wanted})


def test_globals_are_shared_and_presets_present(namespace: Namespace) -> None:
    main = client()
    assert namespace.install(ship(main, "setup", "bump", "snapshot")) == [
        "setup",
        "bump",
        "snapshot",
    ]
    g = namespace.globals
    assert sys.modules["__main__"] is namespace.module
    assert g["asyncoro"] is discoro and g["discoro"] is discoro
    assert all(name in g for name in ("os", "sys", "traceback", "shutil"))
    assert g["time"] == main["time"]  # the client's global wins over the preset
    g["setup"]([1, 2])
    assert g["bump"](2, by=3) == 6
    assert g["snapshot"]() == ([1, 2], 6, main["time"])  # through the decorator's closure
    for name in ("setup", "bump", "snapshot"):
        assert g[name].__globals__ is g and g[name].__module__ == "__main__"

    later = namespace.load_function(cloudpickle.dumps(main["make_reader"](100)), "reader")
    assert later.__globals__ is g and later() == 106
    lam = namespace.load_function(cloudpickle.dumps(lambda: counter_plus()), "<lambda>")
    g["counter_plus"] = lambda: g["counter"] + 1
    assert lam() == 7 and "<lambda>" not in g
    with pytest.raises(NameError):
        namespace.lookup("nothing_here")


def counter_plus() -> int:  # only its name matters: the lambda above finds it in the namespace
    raise AssertionError("the namespace's binding must be used")


def test_classes_rebound_and_pickled_by_reference(namespace: Namespace) -> None:
    main = client()
    namespace.install(ship(main, "Point", "setup"))
    g = namespace.globals
    point_cls = g["Point"]
    assert point_cls.__module__ == "__main__" and point_cls.norm.__globals__ is g
    g["setup"]("d")
    point = point_cls(3, 4)
    assert (point.norm(), point.hello(), point.label) == (25, "point/base", "d:3")
    assert point_cls.total() == 0 and isinstance(point_cls.origin(), point_cls)
    data = pickle.dumps(point)
    assert b"__main__" in data and b"Point" in data  # by reference, not by value
    again = pickle.loads(data)
    assert type(again) is point_cls and again.norm() == 25
    # an instance the client pickled with its own copy of the class maps to the shipped one
    other = cloudpickle.loads(cloudpickle.dumps(main["Point"](1, 1)))
    assert type(other) is point_cls


def test_classes_arriving_again_in_arguments_stay_rebound(namespace: Namespace) -> None:
    main = client()
    namespace.install(ship(main, "Point", "bump"))
    g = namespace.globals
    g["bump"](5)
    args = cloudpickle.dumps(((main["Point"](1, 2),), {"extra": main["Base"]()}))
    (point,), kwargs = namespace.loads(args)  # cloudpickle refills the known class
    assert type(point) is g["Point"] and g["Point"].norm.__globals__ is g
    assert point.total() == 5  # its methods still see the shared globals
    assert type(kwargs["extra"]) is g["Base"]  # a class that came only with the arguments
    assert type(pickle.loads(pickle.dumps(kwargs["extra"]))) is g["Base"]


def test_user_module_shipped_by_value_resolves_to_namespace(namespace: Namespace) -> None:
    user = client("clientmod_not_on_server")
    namespace.install(ship(user, "Point", "bump"))
    point_cls = namespace.globals["Point"]
    assert point_cls.__module__ == "clientmod_not_on_server"
    assert sys.modules["clientmod_not_on_server"] is namespace.module
    assert namespace.globals["bump"]() == 1 and point_cls.total() == 1
    assert type(pickle.loads(pickle.dumps(point_cls(1, 2)))) is point_cls
    namespace.close()
    assert "clientmod_not_on_server" not in sys.modules


def test_module_file_importable_and_close_cleans_up(namespace: Namespace) -> None:
    main = client()
    files = [
        ShippedFile("shipmod.py", b"def value():\n    return 40\n", 0o640),
        ShippedFile("data.txt", b"payload", 0o600),
    ]
    namespace.install(ship(main, "uses_module", "bump"), files)
    workdir = namespace.workdir
    assert (workdir / "shipmod.py").stat().st_mode & 0o777 == 0o640
    namespace.globals["bump"](2)
    assert namespace.globals["uses_module"]() == 42
    assert "shipmod" in sys.modules and str(workdir) in sys.path
    (workdir / "sub").mkdir()
    (workdir / "sub" / "made_by_a_job").write_text("x")
    namespace.close()
    assert "shipmod" not in sys.modules
    assert str(workdir) not in sys.path
    assert list(workdir.iterdir()) == []
    namespace.close()  # idempotent


def test_file_names_must_be_plain(namespace: Namespace) -> None:
    with pytest.raises(ShippingError):
        namespace.write_files([ShippedFile("../escape.py", b"", 0o644)])
    assert not (namespace.workdir.parent / "escape.py").exists()


CLIENT_PROCESS = """
import base64, pickle, sys
import cloudpickle

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def norm(self):
        return self.x * self.x + self.y * self.y

def describe(p):
    return f"{type(p).__module__}.{type(p).__name__}({p.x},{p.y})"

print("CODE", base64.b64encode(cloudpickle.dumps({"Point": Point, "describe": describe})).decode())
print("INSTANCE", base64.b64encode(pickle.dumps(Point(3, 4))).decode(), flush=True)
back = pickle.loads(base64.b64decode(sys.stdin.readline()))
print("BACK", describe(back), back.norm(), flush=True)
"""


def test_main_classes_resolve_both_ways_with_a_real_client(namespace: Namespace) -> None:
    with PeerProcess(CLIENT_PROCESS) as client_proc:
        code = base64.b64decode(client_proc.expect(r"^CODE (\S+)$")[1])
        instance = base64.b64decode(client_proc.expect(r"^INSTANCE (\S+)$")[1])
        namespace.install(code)
        point = pickle.loads(instance)  # the client's __main__.Point, by reference
        assert type(point) is namespace.globals["Point"] and point.norm() == 25
        reply = pickle.dumps(namespace.globals["Point"](5, 12))
        client_proc.write(base64.b64encode(reply).decode())
        assert client_proc.expect(r"^BACK ")[0] and client_proc.output[-1] == (
            "BACK __main__.Point(5,12) 169"
        )


def test_arguments_without_a_class_by_value_load_alike_by_the_plain_unpickler(
    namespace: Namespace,
) -> None:
    main = client()
    namespace.install(ship(main, "Point", "bump"))
    plain = cloudpickle.dumps(((1, "two", [3.0]), {"four": {5: b"6"}}))
    assert FILLS_CLASS not in plain  # so `loads` skips the noting unpickler
    assert namespace.loads(plain) == ((1, "two", [3.0]), {"four": {5: b"6"}})
    by_value = cloudpickle.dumps(((main["Point"](1, 2),), {}))
    assert FILLS_CLASS in by_value  # what `loads` looks for: the class gets adopted
    (point,), _ = namespace.loads(by_value)
    assert type(point) is namespace.globals["Point"]
