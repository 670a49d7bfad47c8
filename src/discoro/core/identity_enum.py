"""`IdentityEnum`: an `enum.Enum` whose members hash by identity, in C.

Invariant: members are singletons that compare by identity, so an identity hash agrees with
equality. `enum.Enum.__hash__` is Python code; the cluster's state machines look their
tables up by (state, event) pairs of members a few times per run (issue 9).
"""

from __future__ import annotations

import enum

__all__ = ["IdentityEnum"]


class IdentityEnum(enum.Enum):
    """Base of the state machines' state and event enums (see the module docstring)."""

    __hash__ = object.__hash__
