"""`Located`: the identity every addressable object shares (coroutines, channels, RCIs).

Such an object lives in one process. A local one is at this kernel's location (None until
the process joins a network); a remote handle (``_remote``) carries its owner's location.
`NamedLocated` objects (channels, RCIs) are unique by name per process, so a name and a
location identify them: they compare, hash and print by both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discoro.core.kernel import AsynCoro


class Located:
    __slots__ = ()
    _name: str
    _location: Any
    _remote: bool
    _kernel: AsynCoro

    def _where(self) -> Any:
        return self._location if self._remote else self._kernel.location

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_remote(self) -> bool:
        """Whether this is a handle for an object of another process."""
        return self._remote

    @property
    def home_location(self) -> Any:
        """Where it lives, as `location`, but not a copy (never change it): the cheap form
        for the network layer's hot paths."""
        return self._where()

    @property
    def location(self) -> Any:
        """Where it lives (None while this process is not distributed); a copy."""
        location = self._where()
        return None if location is None else type(location)(location.addr, location.port)


class NamedLocated(Located):
    __slots__ = ()

    def __str__(self) -> str:
        location = self._where()
        return self._name if location is None else f"{self._name}@{location}"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, type(self)):
            return NotImplemented
        return self._name == other._name and self.location == other.location

    def __hash__(self) -> int:
        return hash(self._name)
