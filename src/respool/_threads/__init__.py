"""Threaded shells: locks, thread handles and the background filler around the I/O-free cores.

Each shell takes its lock, makes one move on a core from :mod:`respool._core`, releases the
lock, and only then performs what the move returned (wake waiters, run ``destroy``, ask the
filler for replacements). The asyncio shells will do the same around the same cores.
"""
