"""Where the gateway's CPU goes: py-spy on the gateway process under load, summarised.

py-spy samples the running gateway from outside (ptrace; needs root or ptrace permission) and
changes none of its code. The raw output (collapsed stacks) is kept beside the JSON result;
`speedscope`-style viewers and `flamegraph.pl` read it.
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

RATE = 200
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")

#: Where a frame's file belongs, first match wins (py-spy shortens paths to the package part).
AREAS = [
    ("entry", ("cli/main.py",)),
    ("gateway: validation", ("opencode_openai/validation.py",)),
    ("gateway: handlers", ("handlers/", "opencode_openai/handlers")),
    ("gateway: backend", ("backend/", "opencode_openai/backend")),
    ("gateway: openai_map", ("openai_map",)),
    ("gateway: app/middleware", ("opencode_openai/",)),
    ("connexion", ("connexion/",)),
    ("jsonschema/openapi", ("jsonschema", "openapi_", "referencing/", "rpds")),
    ("starlette", ("starlette/",)),
    ("uvicorn/httptools", ("uvicorn/", "httptools")),
    ("aiohttp", ("aiohttp/", "yarl/", "multidict/", "propcache/")),
    ("httpx/httpcore/h11", ("httpx/", "httpcore/", "h11/")),
    ("anyio", ("anyio/",)),
    ("asyncio", ("asyncio/",)),
    ("json", ("json/",)),
    ("logging", ("logging/",)),
]


def area(file: str) -> str:
    if file == "opencode-openai":  # the console script
        return "entry"
    for name, needles in AREAS:
        if any(n in file for n in needles):
            return name
    return "other: " + file.split("/")[0] if "/" in file else "other: " + file


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


class Recorder:
    """py-spy sampling the gateway from `start()` until `stop()` (SIGINT makes it write)."""

    def __init__(self, pid: int, output: Path, rate: int = RATE) -> None:
        self.pid = pid
        self.output = output
        self.rate = rate
        self.error: str | None = None
        self.seconds = 0.0
        self._proc: asyncio.subprocess.Process | None = None
        self._t0 = 0.0

    async def start(self) -> None:
        binary = py_spy()
        if binary is None:
            self.error = "py-spy is not installed (pip install -e '.[bench]')"
            return
        self._proc = await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            str(self.rate),
            "--format",
            "raw",
            "--output",
            str(self.output),
            "--nonblocking",
            # Only samples that hold the GIL: waiting in the event loop's poll is no cost.
            "--gil",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._t0 = time.monotonic()

    async def stop(self) -> None:
        if self._proc is None:
            return
        self.seconds = time.monotonic() - self._t0
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            out, _ = await asyncio.wait_for(self._proc.communicate(), 30)
        except TimeoutError:
            self._proc.kill()
            out, _ = await self._proc.communicate()
        if not self.output.exists():
            self.error = (
                f"py-spy failed ({self._proc.returncode}): " + out.decode(errors="replace")[-500:]
            )


#: Stages of the gateway's work. A sample goes to the stage of its deepest frame that names one
#: (so httpx under OpenCodeClient counts as "calls to OpenCode", json under the event reader as
#: "event reader"); samples with none are the event loop's own work.
STAGES: list[tuple[str, Any]] = [
    ("calls to OpenCode (OpenCodeClient)", lambda f, p: f.startswith("OpenCodeClient.")),
    (
        "OpenCode /event reader (lines, json)",
        lambda f, p: f.startswith("EventStream.") or f == "_sse_data",
    ),
    (
        "aiohttp (OpenCode's answers and events on the wire)",
        lambda f, p: p.startswith(("aiohttp/", "yarl/", "multidict/")),
    ),
    ("turn (backend: fold, pool, limiter)", lambda f, p: p.startswith("backend/")),
    (
        "handler + OpenAI mapping",
        lambda f, p: (
            p.startswith(("handlers/", "openai_map/")) or "/openai_map/" in p or "/handlers/" in p
        ),
    ),
    (
        "request validation",
        lambda f, p: (
            "request_validation" in p
            or "validators" in p
            or "opencode_openai/validation.py" in p
            or p.startswith(("jsonschema", "openapi_"))
        ),
    ),
    (
        "Connexion/Starlette middleware, security, routing, app",
        lambda f, p: p.startswith(("connexion/", "starlette/", "opencode_openai/")),
    ),
    (
        "uvicorn HTTP server (parse, send)",
        lambda f, p: p.startswith(("uvicorn/protocols/", "uvicorn/middleware/", "httptools")),
    ),
]
OTHER_STAGE = "event loop and the rest (asyncio, anyio, ...)"


def stage(frames: list[tuple[str, str]]) -> str:
    for func, file in reversed(frames):
        for name, matches in STAGES:
            if matches(func, file):
                return name
    return OTHER_STAGE


def summarise(raw: Path, seconds: float, rate: int = RATE, top: int = 15) -> dict[str, Any]:
    """Self time by area and by function, inclusive time of the gateway's own functions."""
    self_area: collections.Counter[str] = collections.Counter()
    self_func: collections.Counter[str] = collections.Counter()
    incl_func: collections.Counter[str] = collections.Counter()
    incl_area: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for part in stack.split(";"):
            m = FRAME.match(part)
            if m:
                frames.append((m["func"], m["file"]))
        if not frames:
            continue
        stages[stage(frames)] += count
        func, file = frames[-1]
        self_area[area(file)] += count
        self_func[f"{func} ({file})"] += count
        for name in {f"{f} ({p})" for f, p in frames}:
            incl_func[name] += count
        for name in {area(p) for _, p in frames} - {"entry"}:
            incl_area[name] += count

    def pct(counter: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {
        "samples": total,
        # Share of wall time some thread of the gateway held the GIL (ran Python).
        "busy_percent": round(100 * total / (seconds * rate), 1) if seconds else None,
        "by_stage": pct(stages, 20),
        "self_by_area": pct(self_area, 30),
        "inclusive_by_area": pct(incl_area, 30),
        "self_by_function": pct(self_func, top),
        "inclusive_by_function": pct(incl_func, 40),
    }


def render(summary: dict[str, Any], cpu_ms_per_request: float | None = None) -> str:
    per = cpu_ms_per_request
    head = (
        f"py-spy (--gil) on the gateway during the soak: {summary['samples']} samples; it held "
        f"the GIL ~{summary['busy_percent']}% of the window"
    )
    if per:
        head += f"; {per:.2f} ms CPU per request (psutil)"
    lines = [head, "  by stage (% of samples" + (", ~ms per request)" if per else ")") + ":"]
    for k, v in summary.get("by_stage", []):
        lines.append(f"    {v:5.1f}" + (f"  {per * v / 100:5.2f}" if per else "") + f"  {k}")
    lines += [
        "  self time by area (% of samples):",
        *(f"    {v:5.1f}  {k}" for k, v in summary["self_by_area"][:12]),
        "  self time, top functions:",
        *(f"    {v:5.1f}  {k}" for k, v in summary["self_by_function"][:12]),
    ]
    return "\n".join(lines)
