"""Sans-I/O wire protocol: frames, handshake, messages, discovery datagrams.

Turns bytes into events and events into bytes; the I/O lives in `discoro.net`. Imports no
asyncio, socket, ssl or threading: only the standard library, msgpack and `discoro.errors`.
The control plane is msgpack only; payloads are opaque bytes handed up only after the peer
authenticated.
"""

from discoro.wire.connection import Connection as Connection
from discoro.wire.connection import ConnectionState as ConnectionState
from discoro.wire.discovery import MAX_DATAGRAM_SIZE as MAX_DATAGRAM_SIZE
from discoro.wire.discovery import Announcement as Announcement
from discoro.wire.discovery import cluster_tag as cluster_tag
from discoro.wire.discovery import decode_announcement as decode_announcement
from discoro.wire.discovery import encode_announcement as encode_announcement
from discoro.wire.events import NEED_DATA as NEED_DATA
from discoro.wire.events import ConnectionClosed as ConnectionClosed
from discoro.wire.events import Event as Event
from discoro.wire.events import HandshakeComplete as HandshakeComplete
from discoro.wire.events import MessageReceived as MessageReceived
from discoro.wire.frames import MAX_CONTROL_SIZE as MAX_CONTROL_SIZE
from discoro.wire.frames import MAX_FRAME_SIZE as MAX_FRAME_SIZE
from discoro.wire.frames import Frame as Frame
from discoro.wire.frames import FrameDecoder as FrameDecoder
from discoro.wire.frames import FrameEncoder as FrameEncoder
from discoro.wire.frames import encode_frame as encode_frame
from discoro.wire.handshake import HANDSHAKE_MAX_FRAME as HANDSHAKE_MAX_FRAME
from discoro.wire.handshake import PROTOCOL_VERSION as PROTOCOL_VERSION
from discoro.wire.handshake import Handshake as Handshake
from discoro.wire.handshake import Role as Role
from discoro.wire.identity import Identity as Identity
from discoro.wire.identity import new_sid as new_sid
from discoro.wire.messages import OPS as OPS
from discoro.wire.messages import Message as Message
from discoro.wire.messages import decode_message as decode_message
from discoro.wire.messages import message_control as message_control
