"""Scenario ``transient``: ``TransientPool`` get+put against ``deque`` pop+append, and pooled
buffers of 4 KiB, 256 KiB and 8 MiB against ``bytearray(n)``.

Run: ``python benchmarks/transient.py [--quick] [--json FILE] [--plot FILE.png]``, the same as
``respool bench transient``; see README.md here for what it measures and the goals.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "transient"]))
