"""GatewayMetrics: the gateway's Prometheus metrics, in a registry of its own per app.

Recorded in three places only: AccessLog (every request; by key and model, every request that
came with a key), `observe_turn` (every turn: time to first token, tokens and failures, by key
and model) and the /metrics handler (gauges read from the backend at scrape time). The key and
model labels stay bounded: key names are the configured ones, models the catalog's ids.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from opencode_openai.core.errors import GatewayError
from opencode_openai.core.events import ReasoningDelta, ReasoningSignature, TurnEvent, TurnFinished
from opencode_openai.core.usage import RequestUsage

__all__ = ["GatewayMetrics", "observe_turn"]

_ROUTES = (
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
    "/v1/models",
    "/health",
    "/metrics",
    "/openapi.json",
    "/",
)
#: The states an OpenCode worker reports (backend.worker.WorkerState), each a label value of
#: `opencode_openai_opencode_workers` even at 0.
WORKER_STATES = ("starting", "ready", "restarting", "recycling", "failed", "stopped")
#: What the supervisor did: respawned a crashed process, recycled one, gave up on one.
SUPERVISOR_EVENTS = ("restart", "recycle", "give_up")
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def route_of(path: str) -> str:
    """A bounded label: known routes, `/v1/models/{model}`, `/v1/responses/{response_id}`
    (and its `/input_items`), or `other`."""
    if path in _ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{model}"
    if path.startswith("/v1/responses/") and "/" not in path[len("/v1/responses/") :].rstrip("/"):
        return "/v1/responses/{response_id}"
    if path.startswith("/v1/responses/") and path.endswith("/input_items"):
        return "/v1/responses/{response_id}/input_items"
    return "other"


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "opencode_openai_requests", "HTTP requests answered.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "opencode_openai_request_duration_seconds",
            "Request duration, first byte in to last byte out.",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.in_flight = Gauge(
            "opencode_openai_requests_in_flight", "Requests being served now.", registry=r
        )
        self.ttft = Histogram(
            "opencode_openai_time_to_first_token_seconds",
            "From the request to the first token of the answer.",
            buckets=_LATENCY,
            registry=r,
        )
        self.tokens = Counter(
            "opencode_openai_tokens",
            "Tokens reported by the provider, by kind, key name and model.",
            ["kind", "key", "model"],
            registry=r,
        )
        self.turn_errors = Counter(
            "opencode_openai_turn_errors",
            "Turns that failed, by OpenAI error type, key name and model.",
            ["type", "key", "model"],
            registry=r,
        )
        self.key_requests = Counter(
            "opencode_openai_key_requests",
            "API requests answered, by key name, model (none: no turn) and status.",
            ["key", "model", "status"],
            registry=r,
        )
        self.turns_running = Gauge(
            "opencode_openai_turns_running", "Chat turns running now.", registry=r
        )
        self.turns_queued = Gauge(
            "opencode_openai_turns_queued", "Chat turns waiting for a slot.", registry=r
        )
        self.processes = Gauge(
            "opencode_openai_opencode_processes",
            "OpenCode processes serving (embedded: supervised; attach: 1).",
            registry=r,
        )
        self.restarts = Gauge(
            "opencode_openai_opencode_restarts",
            "Restarts of embedded OpenCode processes since start.",
            registry=r,
        )
        self.workers = Gauge(
            "opencode_openai_opencode_workers",
            "OpenCode workers by state (starting, ready, restarting, recycling, failed, stopped).",
            ["state"],
            registry=r,
        )
        self.supervisor_events = Counter(
            "opencode_openai_opencode_supervisor_events",
            "OpenCode supervision: crashed processes respawned (restart), processes recycled "
            "(recycle), workers given up on after a crash loop (give_up).",
            ["event"],
            registry=r,
        )
        for state in WORKER_STATES:
            self.workers.labels(state)
        for event in SUPERVISOR_EVENTS:
            self.supervisor_events.labels(event)
        #: The totals the counters were last brought up to (read from /health at each scrape).
        self._counted = dict.fromkeys(SUPERVISOR_EVENTS, 0)

    def request_done(self, path: str, status: int, seconds: float, usage: RequestUsage) -> None:
        route = route_of(path)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if usage.key_name is not None:
            self.key_requests.labels(usage.key_name, usage.model or "none", str(status)).inc()

    def render(self, health: dict[str, Any]) -> bytes:
        workers = health["workers"]
        self.turns_running.set(health["turns"]["running"])
        self.turns_queued.set(health["turns"]["queued"])
        self.processes.set(sum(1 for w in workers if w["state"] == "ready"))
        self.restarts.set(health["restarts"])
        states = [w["state"] for w in workers]
        for state in {*WORKER_STATES, *states}:
            self.workers.labels(state).set(states.count(state))
        totals = {
            "restart": sum(w["restarts"] for w in workers),
            "recycle": sum(w["recycles"] for w in workers),
            # FAILED is left only for STOPPED at shutdown; the counter keeps its high mark.
            "give_up": states.count("failed"),
        }
        for event, total in totals.items():
            if total > self._counted[event]:
                self.supervisor_events.labels(event).inc(total - self._counted[event])
                self._counted[event] = total
        return generate_latest(self.registry)


async def observe_turn(
    events: AsyncGenerator[TurnEvent, None], metrics: GatewayMetrics, usage: RequestUsage
) -> AsyncGenerator[TurnEvent, None]:
    """Pass a turn's events through, noting time to first token, tokens and failures, in the
    metrics and in the request's usage."""
    started = time.perf_counter()
    first = True
    key, model = usage.key_name or "none", usage.model or "none"
    try:
        async for event in events:
            if first and not isinstance(event, (TurnFinished, ReasoningDelta, ReasoningSignature)):
                usage.ttft_s = time.perf_counter() - started
                metrics.ttft.observe(usage.ttft_s)
                first = False
            if isinstance(event, TurnFinished):
                reported = event.usage
                usage.prompt_tokens = reported.prompt_tokens
                usage.completion_tokens = reported.completion_tokens
                usage.cached_tokens = reported.cached_tokens
                usage.reasoning_tokens = reported.reasoning_tokens
                for kind, value in (
                    ("prompt", reported.prompt_tokens),
                    ("completion", reported.completion_tokens),
                    ("cached", reported.cached_tokens),
                    ("reasoning", reported.reasoning_tokens),
                ):
                    metrics.tokens.labels(kind, key, model).inc(value)
            yield event
    except GatewayError as exc:
        metrics.turn_errors.labels(exc.type, key, model).inc()
        raise
    finally:
        await events.aclose()
