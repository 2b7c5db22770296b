"""Statistics and the printed table."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .load import Outcome


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(outcomes: Sequence[Outcome], *, ttft: bool = False) -> dict[str, Any]:
    """Counts by kind, and ms percentiles of the successful ones (latency, and TTFT if asked)."""
    ok = [o for o in outcomes if o.kind == "ok"]
    result: dict[str, Any] = {
        "n": len(outcomes),
        "ok": len(ok),
        "429": sum(1 for o in outcomes if o.kind == "429"),
        "errors": sum(1 for o in outcomes if o.kind == "error"),
        "hung": sum(1 for o in outcomes if o.kind == "hung"),
    }
    for name, values in (("latency_ms", [o.latency * 1000 for o in ok]),) + (
        (("ttft_ms", [o.ttft * 1000 for o in ok if o.ttft is not None]),) if ttft else ()
    ):
        result[name] = {f"p{q}": round(percentile(values, q), 2) for q in (50, 95, 99)}
        result[name]["mean"] = round(sum(values) / len(values), 2) if values else math.nan
    events = [o.events for o in ok if o.events]
    if events:
        result["opencode_events_per_turn"] = round(sum(events) / len(events), 1)
    details = sorted({o.detail for o in outcomes if o.kind in ("error", "hung") and o.detail})
    if details:
        result["error_samples"] = details[:5]
    return result


@dataclass
class Row:
    metric: str
    baseline: str = ""
    gateway: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def ratio(gateway: float, baseline: float) -> str:
    if not baseline or math.isnan(baseline) or math.isnan(gateway):
        return "-"
    return f"{gateway / baseline:.2f}x"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "FAIL")


def table(rows: list[Row | str]) -> str:
    """A plain-text table; a str entry is a section heading."""
    head = Row("metric", "baseline", "gateway", "gw/base", "target", "")
    real = [r for r in rows if isinstance(r, Row)] + [head]
    widths = [max(len(getattr(r, f)) for r in real) for f in Row.__dataclass_fields__]

    def line(r: Row) -> str:
        cells = [
            getattr(r, f).ljust(w) if i == 0 else getattr(r, f).rjust(w)
            for i, (f, w) in enumerate(zip(Row.__dataclass_fields__, widths, strict=False))
        ]
        cells[-2] = r.target.ljust(widths[-2])
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(Row("x" * widths[0], *("x" * w for w in widths[1:]))))
    out = [line(head), rule]
    out += [f"[{r}]" if isinstance(r, str) else line(r) for r in rows]
    return "\n".join(out)


def write_result(directory: Path, name: str, result: dict[str, Any]) -> Path:
    """A run's JSON, as `directory/NAME-<UTC timestamp>.json`; its path."""
    directory.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = directory / f"{name}-{stamp}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    return out
