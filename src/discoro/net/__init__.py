"""The distributed runtime: transport, peers, discovery, remote references."""
