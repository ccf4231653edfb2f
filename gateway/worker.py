"""The worker loop: grant transitions on time, then outbox fan-out and webhook deliveries.

It sleeps until the next due instant (a grant starting, ending or due for its warning, a webhook
retry), never longer than `worker_max_sleep_seconds`, so that work created meanwhile is seen
promptly. Any number of workers may run against one database: each piece of work is claimed by
one of them (see `sharing.expiry` and `sharing.webhooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from gateway.settings import Settings
from gateway.webhook_sender import HttpxWebhookSender
from sharing import audit_storage, checkpoints, expiry, webhooks
from sharing.clock import Clock
from sharing.expiry import TransitionReport
from tenants.keyring import KeyRing

__all__ = ["Worker", "WorkerReport", "running_worker"]

_log = logging.getLogger("shiftgate.worker")


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What one pass did."""

    transitions: TransitionReport
    dispatched: int
    deliveries: webhooks.DeliveryReport
    checkpoints: int

    @property
    def busy(self) -> bool:
        """A pass that filled a batch: more may be waiting, so go again at once."""
        return self.dispatched >= _OUTBOX_BATCH or self.deliveries.claimed >= _DELIVERY_BATCH


_OUTBOX_BATCH = 500
_DELIVERY_BATCH = 100


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        keyring: KeyRing,
        sender: webhooks.WebhookSender,
        batch: int = 500,
    ) -> None:
        self._clock = clock
        self._keyring = keyring
        self._sender = sender
        self._max_sleep = settings.worker_max_sleep_seconds
        self._lease = settings.webhook_lease
        self._checkpoint_every = settings.audit_checkpoint_events
        self._checkpoint_interval = timedelta(seconds=settings.audit_checkpoint_seconds)
        self._batch = batch

    async def run_once(self) -> WorkerReport:
        """Everything due now: transitions first (they write outbox rows and audit events),
        then deliveries, then the audit table's coming months and checkpoints of the chains
        that grew."""
        now = await self._clock.now()
        transitions = await expiry.run_transitions(now, batch=self._batch)
        dispatched = await webhooks.dispatch_outbox(now, limit=_OUTBOX_BATCH)
        deliveries = await webhooks.deliver_due(
            self._keyring, self._sender, self._clock, limit=_DELIVERY_BATCH, lease=self._lease
        )
        await audit_storage.ensure_partitions(now)
        signed = await checkpoints.run_checkpoints(
            self._keyring,
            await self._clock.now(),
            every=self._checkpoint_every,
            interval=self._checkpoint_interval,
        )
        return WorkerReport(transitions, dispatched, deliveries, signed)

    async def seconds_to_next(self) -> float:
        """How long to sleep: until the next due instant, at most `max_sleep`."""
        due = [
            moment
            for moment in (await expiry.next_due(), await webhooks.next_delivery_due())
            if moment is not None
        ]
        if not due:
            return self._max_sleep
        now = await self._clock.now()
        return min(self._max_sleep, max(0.0, (min(due) - now).total_seconds()))

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set. A failing database is logged and retried, never fatal."""
        _log.info("worker started")
        while not stop.is_set():
            try:
                report = await self.run_once()
                if (
                    report.transitions.total
                    or report.dispatched
                    or report.deliveries.claimed
                    or report.checkpoints
                ):
                    _log.info(
                        "expired %d, activated %d, warned %d grants; dispatched %d events; "
                        "delivered %d, failed %d attempts; signed %d checkpoints",
                        report.transitions.expired,
                        report.transitions.activated,
                        report.transitions.warned,
                        report.dispatched,
                        report.deliveries.delivered,
                        report.deliveries.failed,
                        report.checkpoints,
                    )
                delay = 0.0 if report.busy else await self.seconds_to_next()
            except Exception as exc:  # the database may be down: say so, try again later
                _log.error("worker pass failed: %s: %s", type(exc).__name__, exc)
                delay = self._max_sleep
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        _log.info("worker stopped")


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, *, clock: Clock, keyring: KeyRing
) -> AsyncIterator[Worker]:
    """A worker with its HTTP client for webhooks, closed on the way out."""
    sender = HttpxWebhookSender(
        timeout=settings.webhook_timeout_seconds, allow_private=settings.webhook_allow_private
    )
    try:
        yield Worker(settings, clock=clock, keyring=keyring, sender=sender)
    finally:
        await sender.aclose()
