"""GET /metrics (Prometheus text format, behind the API key)."""

from __future__ import annotations

from typing import Any

from connexion import request

from opencode_openai.backend import OpenCodeBackend
from opencode_openai.core.metrics import GatewayMetrics


async def get_metrics() -> Any:
    backend: OpenCodeBackend = request.state.backend
    metrics: GatewayMetrics = request.state.metrics
    # generate_latest() writes the classic text format, which Prometheus assumes for text/plain.
    return metrics.render(backend.health()), 200, {"Content-Type": "text/plain"}
