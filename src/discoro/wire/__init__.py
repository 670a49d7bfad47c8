"""Sans-I/O wire protocol: frames, handshake, messages, discovery datagrams.

Imports no asyncio, socket or ssl.
"""
