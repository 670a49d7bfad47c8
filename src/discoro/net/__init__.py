"""The distributed runtime: transport, peers, discovery, remote references.

Importing this package installs the network factory into the kernel, so the first
distributed call of a program starts networking.
"""

from discoro.core.kernel import AsynCoro
from discoro.net.network import make_network

AsynCoro.install_network(make_network)
