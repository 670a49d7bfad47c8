"""discoro proper: scheduler, node, server process, Computation."""
