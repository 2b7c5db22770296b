"""run_turn: one request as one OpenCode turn, told as a stream of TurnEvents.

This is the only way to get an answer out of OpenCode. It picks a worker and a slot, sends
the plan as a prompt (backend/prompt.py) to a pooled session of the right workspace instance,
follows that session on the instance's event stream, and folds what comes into TurnEvents
(backend/fold.py). The turn's end is checked against the session's stored messages, so no
part is lost to event timing. Every step takes from the request's Deadline. Whatever ends
the iteration (finish, error, timeout, or the consumer going away) the turn is aborted if
still running and the session goes back to the pool (or is deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from opencode_openai.backend.events import LOST, RECONNECTED
from opencode_openai.backend.fold import TurnFold
from opencode_openai.backend.prompt import prompt_body
from opencode_openai.core.deadline import Deadline
from opencode_openai.core.errors import BackendError, BackendUnavailable, GatewayError
from opencode_openai.core.events import TurnEvent
from opencode_openai.core.plan import TurnPlan

if TYPE_CHECKING:
    from opencode_openai.backend.instance import WorkspaceInstance
    from opencode_openai.backend.service import OpenCodeBackend
    from opencode_openai.backend.worker import OpenCodeWorker

__all__ = ["run_turn"]

log = logging.getLogger("opencode_openai.turn")

#: With no event for this long, read the session's messages: the event stream may be stalled.
SILENCE_S = 3.0


async def run_turn(
    backend: OpenCodeBackend, plan: TurnPlan, *, deadline: Deadline
) -> AsyncGenerator[TurnEvent, None]:
    # Waiting for a worker and for a slot may each take a quarter of the request's time (then
    # 503 / 429: the gateway is busy); the rest is the turn's.
    quarter = deadline.timeout_s / 4
    worker = await backend.pick(plan, min(quarter, max(0.0, deadline.remaining())))
    async with worker.limiter.slot(min(quarter, max(0.0, deadline.remaining()))):
        try:
            async with contextlib.aclosing(_run(worker, plan, deadline)) as events:
                async for event in events:
                    yield event
        finally:
            worker.turn_done(backend.others_accepting(worker))


async def _next_event(queue: asyncio.Queue[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """The next event, waiting at most `timeout` (TimeoutError). Events mostly come in bursts:
    one already queued is taken without a timer (this runs ~20 times per turn)."""
    with contextlib.suppress(asyncio.QueueEmpty):
        return queue.get_nowait()
    async with asyncio.timeout(timeout):
        return await queue.get()


async def _stored(
    instance: WorkspaceInstance, session_id: str, since_ms: float, fold: TurnFold
) -> list[dict[str, Any]]:
    """What the session has stored of this turn, to reconcile the fold with.

    The turn's assistant message when an event has named it (one small read); else the
    session's messages since the turn began (pooled sessions also hold earlier turns'). A
    failed read leaves the fold as the events made it: OpenCode 1.18.33 cannot list the
    messages of a session that holds a structured-output prompt (it fails to encode the
    prompt's `format`), and the events themselves are the answer's first source.
    """
    try:
        if fold.assistant_id is not None:
            return [await instance.client.message(session_id, fold.assistant_id)]
        return [
            message
            for message in await instance.client.messages(session_id)
            if ((message.get("info") or {}).get("time") or {}).get("created", 0) >= since_ms
        ]
    except BackendError as exc:
        log.warning("could not read session %s to check the turn: %s", session_id, exc)
        return []


async def _alive(worker: OpenCodeWorker, instance: WorkspaceInstance) -> bool:
    """After the event stream broke: is OpenCode still there? (A dead one refuses at once.)"""
    if worker.process is not None and worker.process.exited():
        return False
    # Twice: the first try may land on a pooled connection that broke with the stream.
    for _ in range(2):
        try:
            await instance.client.health(timeout=2.0)
            return True
        except GatewayError:
            pass
    return False


async def _run(
    worker: OpenCodeWorker, plan: TurnPlan, deadline: Deadline
) -> AsyncGenerator[TurnEvent, None]:
    instance = await deadline.bound(worker.instance_for(plan.tools), "loading the tool set")
    session_id = await deadline.bound(instance.sessions.acquire(), "creating a session")
    queue = instance.events.subscribe(session_id)
    clean = False
    try:
        # Our turn's messages are those OpenCode creates from now on (same clock: OpenCode must
        # run on this machine anyway); earlier turns of this pooled session are older.
        since_ms = time.time() * 1000
        await deadline.bound(
            instance.client.prompt_async(session_id, prompt_body(plan)), "sending the prompt"
        )
        fold = TurnFold(
            structured=plan.output is not None,
            tool_names=frozenset(tool.name for tool in plan.tools),
            forced=plan.tool_choice is not None,
        )
        ends_seen = 0  # end signals already checked against the stored messages
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise deadline.exceeded("the model's answer")
            try:
                event = await _next_event(queue, min(remaining, SILENCE_S))
            except TimeoutError:
                out = fold.reconcile(await _stored(instance, session_id, since_ms, fold))
            else:
                kind = event.get("type")
                if kind == LOST:
                    if not await _alive(worker, instance):
                        raise BackendUnavailable(
                            "OpenCode stopped during the request; retry shortly",
                            headers={"Retry-After": "2"},
                        ) from None
                    continue
                if kind == RECONNECTED:
                    log.warning("event stream reconnected during session %s", session_id)
                    fold.snapshots_only = True
                    out = fold.reconcile(await _stored(instance, session_id, since_ms, fold))
                else:
                    out = fold.feed(event)
                    clean = clean or kind == "session.idle"
            for turn_event in out:
                yield turn_event
            if fold.end_signals > ends_seen and not fold.told_whole:
                # The events say the turn is over; the stored messages say what it holds.
                ends_seen = fold.end_signals
                for turn_event in fold.reconcile(
                    await _stored(instance, session_id, since_ms, fold)
                ):
                    yield turn_event
            if fold.complete:
                # At a client tool call this stops the turn: nothing runs on the host and no
                # second step (agent loop) may start. The plugin refuses a second model call
                # as a backstop.
                for turn_event in fold.finished():
                    yield turn_event
                return
    finally:
        instance.events.unsubscribe(session_id)
        instance.sessions.release(session_id, clean=clean)
