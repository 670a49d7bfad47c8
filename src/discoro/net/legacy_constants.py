"""Module-level knobs of the original's distributed layer that programs still assign or read
(reference 2.1, 2.6).

`MaxConnectionErrors` (default 10): in the original, a peer was declared offline after this
many consecutive failures to connect to it, and programs lower it (``chat_chan_server``
sets ``asyncoro.MaxConnectionErrors = 3``) to notice a vanished peer sooner. Here a peer's
link pings every second and a peer is offline after 5 s of silence or when its link breaks
(DESIGN.md), whatever this number says: it is kept so that such programs run unchanged,
and assigning it has no effect.
"""

from __future__ import annotations

MaxConnectionErrors = 10
