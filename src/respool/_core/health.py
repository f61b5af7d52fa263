"""Per-resource health: when to check a resource, when to retire it, when to create one.

Every pool asks the same questions of each resource it holds, and of each slot that has none:

* *check before this use?* — ``check`` costs a round trip, so it runs only on a resource that
  has been idle at least ``check_after`` seconds, and never on one made for the very use at
  hand (a check that always fails must not make a pool spin creating resources);
* *retire after this use?* — worn out after ``max_uses`` uses, or past its lifetime;
* *retire while idle?* — past its lifetime, made before the last ``drain()``, or (when the pool
  holds more than it needs) idle longer than ``idle_timeout``; *ping it now?* — untouched for
  ``keepalive`` seconds; *when next?* — the earliest of those deadlines, so a shell sleeps
  exactly until then instead of polling;
* *create now, or when?* — after failures, on the shared backoff (:mod:`._core.backoff`);
  a use waiting for a resource gives up at its deadline, or after one last attempt once the
  pool is stopping.

:class:`Rules` holds a pool's settings and answers the first questions for a :class:`Vitals`,
the record kept beside each resource (a worker keeps one; a free list can keep one per idle
entry). :class:`Supply` answers the last one for a slot that must be filled. Both are I/O-free:
the shell passes the time and performs what they answer (check, destroy, create, sleep).

Lifetimes are jittered per resource (each gets up to ``LIFETIME_JITTER`` less, drawn once when
it is born), so resources created together, at start-up, are not all retired at once.

*Drain.* :meth:`Rules.drain` starts a new *drain generation*; every resource carries the
generation it was born in, and one born in an earlier generation is retired (``DRAIN``) at its
next idle pass or at the end of its current use, never during it. This epoch is the pool's own
and has nothing to do with ``os.fork()``. The generation is the one piece of pool-wide state
here: the shell bumps it under its lock and may read it without one (a single ``int``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Final

from respool._core.backoff import Backoff, Retry

__all__ = [
    "ABORT",
    "CHECK",
    "CREATE",
    "DRAIN",
    "ERROR",
    "GIVE_UP",
    "IDLE",
    "LEAK",
    "LIFETIME",
    "LIFETIME_JITTER",
    "PING",
    "REASONS",
    "SLEEP",
    "USES",
    "Rules",
    "Supply",
    "Vitals",
]

#: Retirement reasons (as the stats name them). The rules here answer the first four; the
#: shells give the others: ``CHECK`` (``check`` said no), ``LEAK`` (a lost lease), ``ERROR``
#: (``reset`` raised), ``ABORT`` (a use cut short by a non-``Exception``).
USES: Final = "uses"
LIFETIME: Final = "lifetime"
IDLE: Final = "idle"
DRAIN: Final = "drain"
CHECK: Final = "check"
LEAK: Final = "leak"
ERROR: Final = "error"
ABORT: Final = "abort"
#: Every reason, in the order stats list them.
REASONS: Final = (LIFETIME, USES, IDLE, CHECK, DRAIN, LEAK, ERROR, ABORT)

#: What :meth:`Rules.idle_pass` answers when an idle resource is due a ``check`` (keepalive).
PING: Final = "ping"

#: A resource's lifetime is ``max_lifetime`` shortened by up to this fraction.
LIFETIME_JITTER: Final = 0.1

#: What :meth:`Supply.next_step` answers.
CREATE: Final = "create"
SLEEP: Final = "sleep"
GIVE_UP: Final = "give up"

_NEVER: Final = math.inf


class Vitals:
    """What a pool knows about one live resource, to judge its health.

    ``trusted`` marks a resource made for the use at hand: it skips its first check.
    ``generation`` is the drain generation it was born in (see :meth:`Rules.drain`).
    """

    __slots__ = (
        "checked_at",
        "created_at",
        "expires_at",
        "generation",
        "idle_since",
        "trusted",
        "uses",
    )

    def __init__(
        self, now: float, expires_at: float, *, trusted: bool, generation: int = 0
    ) -> None:
        self.created_at = now
        self.generation = generation
        #: Retire at or after this instant (``inf``: never); jittered once, at birth.
        self.expires_at = expires_at
        self.idle_since = now
        #: Last time ``check`` passed (for ``keepalive``); creation counts as one.
        self.checked_at = now
        self.uses = 0
        self.trusted = trusted

    def __repr__(self) -> str:
        return f"<Vitals uses={self.uses} idle_since={self.idle_since:.3f}>"


class Rules:
    """A pool's health settings, applied to each resource's :class:`Vitals`.

    ``check_after`` — check only a resource idle at least this long (0: before every use);
    ``max_uses`` / ``max_lifetime`` — retire after this many uses / seconds (None: never);
    ``idle_timeout`` — a surplus resource idle this long is retired (None: never);
    ``keepalive`` — an idle resource untouched this long is due a check (None: never).

    ``generation`` is the current drain generation (see :meth:`drain`).
    """

    __slots__ = (
        "_rng",
        "check_after",
        "generation",
        "idle_timeout",
        "keepalive",
        "max_lifetime",
        "max_uses",
    )

    def __init__(
        self,
        *,
        check_after: float = 0.0,
        max_uses: int | None = None,
        max_lifetime: float | None = None,
        idle_timeout: float | None = None,
        keepalive: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not check_after >= 0:
            raise ValueError(f"check_after must be >= 0, got {check_after!r}")
        if max_uses is not None and max_uses < 1:
            raise ValueError(f"max_uses must be >= 1 or None, got {max_uses!r}")
        for name, value in (
            ("max_lifetime", max_lifetime),
            ("idle_timeout", idle_timeout),
            ("keepalive", keepalive),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        self.check_after = check_after
        self.max_uses = max_uses
        self.max_lifetime = max_lifetime
        self.idle_timeout = idle_timeout
        self.keepalive = keepalive
        self._rng = rng
        self.generation = 0

    @property
    def wears(self) -> bool:
        """Can a use wear a resource out (``max_uses`` or ``max_lifetime`` set)? A shell may
        skip :meth:`after_use` entirely when it cannot and nothing else needs the time."""
        return self.max_uses is not None or self.max_lifetime is not None

    @property
    def timed(self) -> bool:
        """Does an idle resource have deadlines of its own (``max_lifetime`` or ``keepalive``)?
        If not, a shell may wait for work without a timeout."""
        return self.max_lifetime is not None or self.keepalive is not None

    def born(self, now: float, *, trusted: bool = False) -> Vitals:
        """The record of a resource created at *now*; *trusted*: made for the use at hand.

        Its lifetime is ``max_lifetime`` shortened by a draw in ``[0, LIFETIME_JITTER]`` of it;
        it belongs to the current drain generation.
        """
        expires_at = _NEVER
        if self.max_lifetime is not None:
            expires_at = now + self.max_lifetime * (1.0 - LIFETIME_JITTER * self._rng())
        return Vitals(now, expires_at, trusted=trusted, generation=self.generation)

    # -- drain ----------------------------------------------------------------------------------

    def drain(self) -> int:
        """Start a new drain generation: every resource born before is now :meth:`stale`.
        Returns the new generation."""
        self.generation += 1
        return self.generation

    def stale(self, vitals: Vitals) -> bool:
        """Was the resource born before the last :meth:`drain`?"""
        return vitals.generation < self.generation

    # -- before and after a use -----------------------------------------------------------------

    def check_before_use(self, vitals: Vitals, now: float) -> bool:
        """Must the resource pass ``check`` before this use? (The shell skips the question
        when the lifecycle has no ``check``.) Idle time counts from its last use or its last
        passed check, whichever is later."""
        if vitals.trusted:
            return False
        return now - max(vitals.idle_since, vitals.checked_at) >= self.check_after

    def passed_check(self, vitals: Vitals, now: float) -> None:
        """``check`` just passed."""
        vitals.checked_at = now

    def before_use(self, vitals: Vitals) -> None:
        """The resource is handed to a use: count it. Its first use spends the trust."""
        vitals.uses += 1
        vitals.trusted = False

    def after_use(self, vitals: Vitals, now: float) -> str | None:
        """The use ended cleanly (and ``reset`` passed): the retirement reason if it is worn
        out (``USES``, ``LIFETIME``) or drained (``DRAIN``), else None — it is idle from
        *now*."""
        vitals.idle_since = now
        if self.max_uses is not None and vitals.uses >= self.max_uses:
            return USES
        if now >= vitals.expires_at:
            return LIFETIME
        if vitals.generation < self.generation:
            return DRAIN
        return None

    # -- while idle -----------------------------------------------------------------------------

    def idle_verdict(self, vitals: Vitals, now: float, *, surplus: bool) -> str | None:
        """Should an idle resource be retired now? ``LIFETIME`` past its lifetime; ``DRAIN``
        if born before the last drain; ``IDLE`` if *surplus* (the pool holds more than it
        must) and idle ``idle_timeout`` or more."""
        if now >= vitals.expires_at:
            return LIFETIME
        if vitals.generation < self.generation:
            return DRAIN
        if (
            surplus
            and self.idle_timeout is not None
            and now - vitals.idle_since >= self.idle_timeout
        ):
            return IDLE
        return None

    def keepalive_due(self, vitals: Vitals, now: float) -> bool:
        """Has the idle resource gone ``keepalive`` seconds without a use or a check?"""
        if self.keepalive is None:
            return False
        return now - max(vitals.idle_since, vitals.checked_at) >= self.keepalive

    def idle_pass(self, vitals: Vitals, now: float, *, surplus: bool = False) -> str | None:
        """One look at an idle resource at *now*: a retirement reason (retire and replace
        it), ``PING`` (run ``check`` now: keepalive), or None (leave it until
        :meth:`next_deadline`). A pool whose lifecycle has no ``check`` has nothing to ping
        with: it builds its rules without ``keepalive``."""
        reason = self.idle_verdict(vitals, now, surplus=surplus)
        if reason is not None:
            return reason
        if self.keepalive_due(vitals, now):
            return PING
        return None

    def next_deadline(self, vitals: Vitals, *, surplus: bool) -> float:
        """When an idle resource next needs attention (retire or ping); ``inf``: never.
        Housekeeping sleeps until the earliest deadline over all idle resources. A resource
        born before the last drain is due at once (``-inf``)."""
        if vitals.generation < self.generation:
            return -_NEVER
        deadline = vitals.expires_at
        if surplus and self.idle_timeout is not None:
            deadline = min(deadline, vitals.idle_since + self.idle_timeout)
        if self.keepalive is not None:
            deadline = min(deadline, max(vitals.idle_since, vitals.checked_at) + self.keepalive)
        return deadline


class Supply:
    """The create side of one slot that must hold a resource (a worker's, a pool filler's):
    whether to try ``create`` now, sleep, or give the waiting use up.

    It wraps the slot's :class:`~respool._core.backoff.Backoff` streak and remembers whether
    the one last attempt allowed after a shutdown began has been made.
    """

    __slots__ = ("backoff", "tried_at_stop")

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff if backoff is not None else Backoff()
        self.tried_at_stop = False

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed ``create`` in the current streak (None: no streak)."""
        return self.backoff.last_error

    @property
    def failures(self) -> int:
        """Failed ``create`` calls in the current streak (0: the last attempt worked)."""
        return self.backoff.failures

    def due(self, now: float) -> bool:
        """May an attempt be made at *now* (no use is waiting for it)?"""
        return self.backoff.due(now)

    def retry_at(self) -> float:
        """When the next attempt is due (0.0: now)."""
        return self.backoff.retry_at

    def failed(self, now: float, error: BaseException) -> Retry:
        """``create`` raised *error*: when to try again, and whether to log a traceback (the
        first failure of a streak) or one line."""
        return self.backoff.failed(now, error)

    def succeeded(self) -> None:
        """``create`` worked: the streak is over."""
        self.backoff.succeeded()

    def next_step(self, now: float, deadline: float | None, *, stopping: bool) -> tuple[str, float]:
        """A use is waiting for this slot's resource until *deadline* (None: no deadline).

        ``(CREATE, now)``: try now (once the pool is stopping, this spends its one last
        attempt). ``(SLEEP, until)``: sleep until then (or until something changes), then ask
        again. ``(GIVE_UP, now)``: fail the use — its deadline passed, or
        the pool is *stopping* and its one last attempt was made (a shutdown must not wait
        out a long timeout for a ``create`` that keeps failing).
        """
        if self.backoff.due(now) or (stopping and not self.tried_at_stop):
            if stopping:
                self.tried_at_stop = True
            return CREATE, now
        if stopping or (deadline is not None and now >= deadline):
            return GIVE_UP, now
        until = self.backoff.retry_at
        if deadline is not None:
            until = min(until, deadline)
        return SLEEP, until
