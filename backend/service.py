"""OpenCodeBackend: a pool of OpenCode workers that looks like one server to the handlers.

Embedded mode runs `--opencode-workers` OpenCode processes (one per core is the point: one
process is single-threaded and served ~25-30 prompts/s); attach mode has the one server it was
given. Each turn goes to the least-loaded accepting worker, preferring the worker that a
conversation's opening message hashes to (conversation affinity), unless that worker is
clearly busier. Created in the app's lifespan, reached by handlers through the request state.

The backend's state is what its workers allow: `ready` while one takes turns; `recycling` while
none does but one is being recycled (turns wait for it, a second or two, and are not refused);
then `restarting`, `starting`; `failed` once every worker gave up (or never came up); `stopped`
after shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opencode_openai.backend.catalog import unknown_aliases_complaint
from opencode_openai.backend.worker import OpenCodeWorker, WorkerState
from opencode_openai.core.errors import BackendUnavailable, SettingsError
from opencode_openai.core.models import ModelCatalog
from opencode_openai.core.plan import TurnPlan
from opencode_openai.core.settings import GatewayConfig

__all__ = ["OpenCodeBackend"]

log = logging.getLogger("opencode_openai.backend")

#: The backend's state: the first of these that a worker is in, else `failed` or `stopped`.
_SERVING_ORDER = (
    WorkerState.READY,
    WorkerState.RECYCLING,
    WorkerState.RESTARTING,
    WorkerState.STARTING,
    WorkerState.FAILED,
)

#: How much busier (running + queued turns) a conversation's own worker may be than the least
#: loaded one before the conversation goes elsewhere.
AFFINITY_SLACK = 2


def _affinity(plan: TurnPlan, workers: int) -> int:
    """A stable worker index for a conversation: its model and opening message."""
    # The plan's parts are frozen dataclasses: their repr is stable and says everything.
    opening = repr((plan.model.id, plan.system[:1], plan.messages[:1]))
    return (
        int.from_bytes(hashlib.blake2b(opening.encode(), digest_size=4).digest(), "big") % workers
    )


class OpenCodeBackend:
    def __init__(
        self,
        config: GatewayConfig,
        on_ready: Callable[[OpenCodeBackend], Awaitable[None] | None] | None = None,
        on_failed: Callable[[OpenCodeBackend], None] | None = None,
    ) -> None:
        self.config = config
        count = 1 if config.opencode_url else config.opencode_workers
        self.workers = [OpenCodeWorker(config, i) for i in range(count)]
        self._on_ready = on_ready
        self._on_failed = on_failed
        self._starter: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start_in_background(self) -> None:
        self._starter = asyncio.create_task(self._start(), name="opencode-start")

    async def _start(self) -> None:
        # A worker that does not come up is FAILED and has logged why (with OpenCode's log).
        await asyncio.gather(*(w.start() for w in self.workers), return_exceptions=True)
        if self.state == "ready" and self._on_ready is not None:
            outcome = self._on_ready(self)
            if asyncio.iscoroutine(outcome):
                await outcome
        elif self.state == "failed" and self._on_failed is not None:
            self._on_failed(self)

    async def stop(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starter
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)

    # -- what handlers and turns use ---------------------------------------------------------

    @property
    def state(self) -> str:
        """`ready`, `recycling`, `restarting`, `starting`, `failed` or `stopped`."""
        states = {w.state for w in self.workers}
        return next((s for s in _SERVING_ORDER if s in states), WorkerState.STOPPED).value

    @property
    def serving(self) -> bool:
        """Chat turns are taken: at once (`ready`) or after a short wait (`recycling`)."""
        return self.state in ("ready", "recycling")

    @property
    def catalog(self) -> ModelCatalog:
        ready = [w for w in self.workers if w.state is WorkerState.READY]
        return (ready or self.workers)[0].catalog

    def use_aliases(self, aliases: Sequence[tuple[str, str]]) -> None:
        """New aliases for every worker (a reload), or none: SettingsError when one names a
        model that a worker's OpenCode does not offer."""
        for worker in self.workers:
            if worker.catalog.models:  # a worker still starting checks them itself
                unknown = worker.catalog.with_aliases(aliases).unknown_aliases()
                if unknown:
                    raise SettingsError(unknown_aliases_complaint(unknown))
        for worker in self.workers:
            worker.use_aliases(aliases)

    @property
    def misconfigured(self) -> bool:
        """A worker was refused for what it was told to do (not given up on after crashes)."""
        return any(w.misconfigured for w in self.workers)

    def errors(self) -> str:
        return "; ".join(
            w.error if len(self.workers) == 1 else f"worker {w.index}: {w.error}"
            for w in self.workers
            if w.error
        )

    def ensure_ready(self) -> None:
        # A recycling worker is back in a second or two: its turns wait for it (see pick).
        if not self.serving:
            errors = self.errors()
            detail = f": {errors}" if errors else ""
            is_ = "has" if self.state == "failed" else "is"
            raise BackendUnavailable(f"the OpenCode backend {is_} {self.state}{detail}")

    async def pick(self, plan: TurnPlan, max_wait_s: float) -> OpenCodeWorker:
        """The worker for this turn: the conversation's own, unless it is clearly busier.

        While no worker accepts turns (a lone worker recycling, all restarting) wait for one,
        up to `max_wait_s`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        while not (accepting := [w for w in self.workers if w.accepting]):
            if loop.time() > deadline:
                raise BackendUnavailable("no OpenCode worker can take the request now")
            await asyncio.sleep(0.05)
        if len(self.workers) == 1:
            return accepting[0]
        least = min(accepting, key=lambda w: w.load)
        own = self.workers[_affinity(plan, len(self.workers))]
        if own.accepting and own.load <= least.load + AFFINITY_SLACK:
            return own
        return least

    def others_accepting(self, worker: OpenCodeWorker) -> bool:
        """Whether every other worker takes turns now. Workers given up on (or stopped) never
        will, and are left out: a worker whose peers all failed recycles like a lone one."""
        gone = (WorkerState.FAILED, WorkerState.STOPPED)
        others = [w for w in self.workers if w is not worker and w.state not in gone]
        return all(w.accepting for w in others)

    def health(self) -> dict[str, Any]:
        workers = [w.health() for w in self.workers]
        state = self.state
        return {
            "mode": self.config.mode,
            "ready": state in ("ready", "recycling"),
            "state": state,
            "error": self.errors() or None,
            "models": len(self.catalog.models),
            "restarts": sum(w["restarts"] for w in workers),
            "sessions": {
                "idle": sum(w["sessions"]["idle"] for w in workers),
                "in_use": sum(w["sessions"]["in_use"] for w in workers),
            },
            "turns": {
                "running": sum(w["turns"]["running"] for w in workers),
                "queued": sum(w["turns"]["queued"] for w in workers),
            },
            "workers": workers,
        }
