"""The coroutine runtime: kernel, coroutines, channels and synchronisation."""
