"""The keeper: a thread that renews a worker's leases and runs maintenance.

It has its own event loop and its own backend connection, so a task that hogs the
worker's event loop (CPU-bound code in an ``async def``) cannot make the worker lose its
leases: the BullMQ "could not renew lock" and Celery visibility-timeout double runs.

Every `interval` it sends one heartbeat carrying the worker's registration and all held
leases, and reports leases that were lost or asked to cancel back to the worker's loop.
If it holds the maintenance lock it also rescues expired leases (every beat), applies
retention (a pass every `prune_every` seconds, every beat while passes find a batch) and
runs the app's leader duties (every beat): extensions such as webhooks follow the event
stream there, without the worker knowing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence

from ..backends import backend_for
from ..backends.base import Backend, Lease, LeaseStatus, Retention, WorkerInfo
from ..plugins import LeaderDuty

log = logging.getLogger("conveyor.worker")
MAINTENANCE_LOCK = "maintenance"


class Keeper:
    def __init__(
        self,
        url: str,
        worker_info: Callable[[], WorkerInfo],
        on_status: Callable[[str, LeaseStatus], None],
        *,
        lease_ms: int,
        interval: float,
        maintenance: bool,
        retention: Retention,
        prune_every: float = 60.0,
        duties: Sequence[LeaderDuty] = (),
    ) -> None:
        self.url = url
        self.worker_info = worker_info
        self.on_status = on_status
        self.lease_ms = lease_ms
        self.interval = interval
        self.maintenance = maintenance
        self.retention = retention
        self.prune_every = prune_every
        self.duties = duties
        self._leases: dict[str, Lease] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-keeper", daemon=True)
        self._last_prune = 0.0
        self.rescued = 0
        self.healthy = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    # Single dict operations and list(dict.values()) are atomic under the GIL, so the
    # worker's loop and this thread share the lease book without a lock.
    def hold(self, lease: Lease) -> None:
        self._leases[lease.job_id] = lease

    def drop(self, job_id: str) -> None:
        self._leases.pop(job_id, None)

    def beat_now(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        backend = backend_for(self.url)
        opened = False
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                if not opened:
                    await backend.open()
                    opened = True
                await self._beat(backend)
                if self.maintenance:
                    await self._maintain(backend)
                if failing_since is not None:
                    log.warning("backend reachable again after %.1fs",
                                time.monotonic() - failing_since)
                    failing_since = None
                self.healthy = True
            except Exception as exc:  # an outage: keep jobs running, keep trying
                self.healthy = False
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.error("heartbeat failed, will keep trying: %s", exc)
            await asyncio.get_running_loop().run_in_executor(None, self._sleep)
        if opened:
            try:
                await backend.unregister_worker(self.worker_info().id)
            except Exception as exc:
                log.warning("could not unregister the worker: %s", exc)
            await backend.close()

    def _sleep(self) -> None:
        self._wake.wait(self.interval)
        self._wake.clear()

    async def _beat(self, backend: Backend) -> None:
        leases = list(self._leases.values())
        statuses = await backend.heartbeat(self.worker_info(), leases, self.lease_ms)
        for lease, status in zip(leases, statuses, strict=True):
            if status is not LeaseStatus.HELD:
                self.on_status(lease.job_id, status)

    async def _maintain(self, backend: Backend) -> None:
        me = self.worker_info().id
        ttl = max(int(self.interval * 3000), 5000)
        if not await backend.try_lock(MAINTENANCE_LOCK, me, ttl):
            return
        rescued = await backend.rescue()
        if rescued:
            self.rescued += len(rescued)
            log.warning("rescued %d job(s) whose worker stopped renewing its lease: %s",
                        len(rescued), ", ".join(rescued[:10]))
        now = time.monotonic()
        if now - self._last_prune >= self.prune_every:
            pruned = await backend.prune_pass(self.retention)
            # work left over, or a batch's worth removed (a write rate that fills a batch
            # per pass): prune again at the next beat instead of `prune_every` later, so
            # retention keeps pace with whatever rate the workers sustain
            busy = pruned.jobs + pruned.events + pruned.tombstones >= self.retention.batch
            self._last_prune = 0.0 if pruned.more or busy else now
            if pruned.jobs or pruned.events or pruned.tombstones:
                log.info("retention removed %d job(s), %d event(s), %d tombstone(s)%s",
                         pruned.jobs, pruned.events, pruned.tombstones,
                         " (more due: next beat)" if pruned.more else "")
        for duty in list(self.duties):
            try:
                await duty(backend)
            except Exception as exc:  # one failing duty must not stop the heartbeat
                log.error("leader duty %s failed: %s", getattr(duty, "__name__", duty), exc)
