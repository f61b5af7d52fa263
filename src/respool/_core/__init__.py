"""I/O-free state machines: they own a pool's state and say what must be done, never do it.

Nothing here starts a thread, sleeps, reads a clock or calls a lifecycle callback. The shells
(threaded and asyncio) take their lock, call a core method, and perform the returned
:class:`~respool._core.free_list.Todo` after releasing the lock.
"""
