"""Scenario ``shipper``: a log shipper, end to end (JSON lines, zlib with a preset dictionary,
UDP datagrams to a receiver on 127.0.0.1 that checks every record), shipped without a pool,
with a FixedPool and a TransientPool of buffers, and with a WorkerPool whose workers own a
compressor and a socket: records per second at two batch sizes, and what each step costs.

Run: ``python benchmarks/shipper.py [--quick] [--json FILE] [--plot FILE.png]``, the
same as ``respool bench shipper``; see README.md here for what it measures.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "shipper"]))
