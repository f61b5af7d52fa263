"""Scenario ``ray``: ``respool.contrib.ray.RayWorkerPool`` on a local Ray against
``ray.util.ActorPool`` on the same kind of actors: per-task overhead with tasks of 50 ms, the
driver's memory over a long ``map``, and a kill drill (an actor's process SIGKILLed every 100
tasks). Skipped, with a note, when Ray is not installed (``pip install 'respool[ray]'``).

Run: ``python benchmarks/bench_ray.py [--quick] [--json FILE] [--plot FILE.png]``, the same
as ``respool bench ray``; see README.md here for what it measures. (Not ``ray.py``: run as a
script, that name would put this directory first on ``sys.path`` and shadow Ray itself.)
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "ray"]))
