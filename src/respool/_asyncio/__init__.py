"""The asyncio shells: futures and tasks of one event loop around the I/O-free cores."""
