"""respool: pools for expensive resources, without the classic pitfalls.

Four strategies under one lifecycle (prepare, use, prepare for reuse, clean up):

* :class:`FixedPool`: a fixed-size free list; callers wait when it is empty;
* :class:`ElasticPool`: a dynamic free list; creates when empty, destroys surplus on return.
"""

from respool.elastic import ElasticPool
from respool.errors import LeaseError, PoolClosed, PoolError, PoolFull, PoolTimeout, StillInUse
from respool.fixed import FixedPool
from respool.lease import Lease
from respool.lifecycle import Lifecycle
from respool.stats import PoolStats

__all__ = [
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
]

__version__ = "0.1.0"
