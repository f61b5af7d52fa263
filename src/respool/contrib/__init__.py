"""Ready-made lifecycles for real resources, each usable by every pool.

Modules here may need optional packages (drivers), installed as extras; nothing in respool's
core imports them. ``respool.contrib.sockets`` needs only the standard library.
"""
