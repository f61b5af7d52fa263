"""respool: pools for expensive resources, without the classic pitfalls.

Four strategies under one lifecycle (prepare, use, prepare for reuse, clean up):

* :class:`FixedPool`: a fixed-size free list; callers wait when it is empty;
* :class:`ElasticPool`: a dynamic free list; creates when empty, destroys surplus on return;
* :class:`WorkerPool`: N worker threads, each owning one resource for its lifetime;
* :class:`TransientPool`: a per-thread cache of short-lived objects, emptied by the garbage
  collector (Go's ``sync.Pool``); :class:`BufferPool` builds size classes of buffers on it.

The asyncio twins :class:`AsyncFixedPool`, :class:`AsyncElasticPool` and
:class:`AsyncWorkerPool` make the same decisions (from the same cores) with futures and tasks;
``TransientPool`` never waits, so it serves both worlds.

Ready-made lifecycles for common resources live in :mod:`respool.resources`;
:func:`debug` turns on checks for resources that are *not quite done*.
"""

from respool._asyncio.worker import AsyncWorkerPool
from respool._debug import debug
from respool.advisor import Advice, advise, advise_from
from respool.buffers import BufferPool
from respool.elastic import AsyncElasticPool, ElasticPool
from respool.errors import (
    AdviceError,
    LeaseError,
    PoolClosed,
    PoolError,
    PoolFull,
    PoolTimeout,
    StillInUse,
)
from respool.fixed import AsyncFixedPool, FixedPool
from respool.lease import AsyncLease, Lease
from respool.lifecycle import Lifecycle
from respool.stats import BufferStats, PoolStats, TransientStats, Usage, WorkerStats
from respool.transient import TransientPool
from respool.worker import WorkerPool

__all__ = [
    "Advice",
    "AdviceError",
    "AsyncElasticPool",
    "AsyncFixedPool",
    "AsyncLease",
    "AsyncWorkerPool",
    "BufferPool",
    "BufferStats",
    "ElasticPool",
    "FixedPool",
    "Lease",
    "LeaseError",
    "Lifecycle",
    "PoolClosed",
    "PoolError",
    "PoolFull",
    "PoolStats",
    "PoolTimeout",
    "StillInUse",
    "TransientPool",
    "TransientStats",
    "Usage",
    "WorkerPool",
    "WorkerStats",
    "advise",
    "advise_from",
    "debug",
]

__version__ = "0.2.0.dev0"
