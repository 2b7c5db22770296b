"""`python -m bench.stress`: count lost answers through a real OpenCode, the CPU saturated.

It starts what the benchmark starts (bench/procs.py): the fake upstream, in its stress mode
(bench/stress_replies.py: every request's reply is derived from an id in its user message), and
the gateway with its embedded `opencode serve`. After a short warm-up it starts CPU burners
(busy processes, one per core by default) and runs phases of chat requests:

    text  plain / streamed, serial (c=1) and concurrent (c=C), no tools offered
    tool  plain / streamed, serial and concurrent, the client tools offered, the upstream
          answering with one call of one of them
    mixed all four kinds interleaved at c=C, the tools offered to every request

Every answer is checked against its script: a text request must get exactly the scripted text
(all of it, in order, nothing more), finish_reason `stop` and no tool call; a tool request exactly
the scripted call (id, name, arguments as JSON equal), no text, finish_reason `tool_calls`.
A tool request answered without any tool call is a *lost* tool call (the bug this run hunts).
Streams must be well formed too (the call's id and name in its first delta only, one
finish_reason, `[DONE]` last). HTTP errors, error events and missing answers are errors.

Meanwhile a tap (a second `/event` reader on the gateway's OpenCode workspaces) records what
OpenCode published for each request, so a failure comes with OpenCode's side of the story.

It prints a table per phase and exits 1 if any answer was lost or wrong, 2 if there were only
errors, else 0. Everything goes to bench/results/stress-<UTC timestamp>.json as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fnmatch
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from opencode_openai.backend.workspace import toolset_key
from opencode_openai.core.plan import ClientTool

from . import stress_replies as script
from .load import make_client
from .procs import ROOT, Gateway, OpenCodeTarget, Upstream, environment, write_opencode_config
from .report import percentile
from .run import STATE, in_git_work_tree

MODEL = "fake/fake-model"
RESULTS = ROOT / "bench" / "results"
#: The gateway waits this long for silence before it reads the session's messages instead
#: (backend/turn.py); the tap counts turns where OpenCode itself was silent that long.
try:
    from opencode_openai.backend.turn import SILENCE_S
except ImportError:  # pragma: no cover - renamed by a later change
    SILENCE_S = 3.0

VERDICTS = ("ok", "lost", "wrong_call", "wrong_text", "error")


def say(text: str) -> None:
    print(f"[stress {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    #: text, tool or mixed.
    kind: str
    #: None: both, alternating (mixed).
    stream: bool | None
    concurrency: int
    requests: int


@dataclass
class Plan:
    requests: int
    concurrency: int
    burners: int
    burner_nice: int
    phases: list[Phase]
    warmup: int
    deadline_s: float
    tap: bool
    keep: bool
    state_dir: Path
    gateway_args: list[str] = field(default_factory=list)
    out: Path = RESULTS


def phase_list(total: int, concurrency: int) -> list[Phase]:
    shapes: list[tuple[str, str, bool | None, int]] = []
    for mode, c in (("serial", 1), ("concurrent", concurrency)):
        for kind in ("text", "tool"):
            for stream in (False, True):
                name = f"{kind}-{'stream' if stream else 'plain'}-{mode}"
                shapes.append((name, kind, stream, c))
    shapes.append(("mixed-concurrent", "mixed", None, concurrency))
    share, extra = divmod(total, len(shapes))
    return [
        Phase(name, kind, stream, c, share + (1 if i < extra else 0))
        for i, (name, kind, stream, c) in enumerate(shapes)
    ]


def parse_args(argv: list[str] | None) -> Plan:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        prog="python -m bench.stress",
        description="Stress the gateway through a real OpenCode with the CPU saturated by busy "
        "processes, and count lost or wrong answers (text and tool calls, streamed and not, "
        "serial and concurrent). Exit 1 if any answer was lost or wrong, 2 on errors only.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=450,
        metavar="N",
        help="requests in all, shared evenly by the phases (default 450: 50 per phase)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=10,
        metavar="C",
        help="concurrency of the concurrent phases (default 10)",
    )
    parser.add_argument(
        "--burners",
        type=int,
        default=cores,
        metavar="K",
        help=f"busy processes saturating the CPU during the phases (default {cores}: one per "
        "core; 0: none)",
    )
    parser.add_argument(
        "--burner-nice",
        type=int,
        default=0,
        metavar="N",
        help="nice value of the burners (default 0, as the gateway and OpenCode; negative "
        "needs root and starves them more)",
    )
    parser.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only the phases matching this pattern (repeatable; e.g. 'tool-*', "
        "'*-concurrent'); their share of --requests stays the same",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        metavar="N",
        help="requests of each kind (text, tool; plain, streamed) before the burners start, "
        "checked but not in the table (default 2)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=75.0,
        metavar="S",
        help="per-request deadline; past it a request is an error (default 75: the gateway's "
        "60 s timeout plus 15)",
    )
    parser.add_argument(
        "--no-tap",
        dest="tap",
        action="store_false",
        help="do not read OpenCode's /event stream alongside the gateway",
    )
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `opencode-openai server-openai`, repeatable "
        "(e.g. --gateway-arg=--opencode-workers --gateway-arg=2)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=STATE / "stress",
        help=f"the gateway's state dir, kept between runs (default {STATE / 'stress'})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, served ids)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.burners < 0:
        parser.error("--requests and --concurrency must be at least 1, --burners at least 0")
    phases = phase_list(args.requests, args.concurrency)
    if args.phase:
        phases = [p for p in phases if any(fnmatch.fnmatch(p.name, g) for g in args.phase)]
        if not phases:
            parser.error(f"no phase matches {args.phase}")
    phases = [p for p in phases if p.requests > 0]
    return Plan(
        requests=args.requests,
        concurrency=args.concurrency,
        burners=args.burners,
        burner_nice=args.burner_nice,
        phases=phases,
        warmup=args.warmup,
        deadline_s=args.deadline,
        tap=args.tap,
        keep=args.keep,
        state_dir=args.state_dir,
        gateway_args=args.gateway_arg,
        out=args.out,
    )


# -- CPU burners ----------------------------------------------------------------------------

_BURN = (
    "import signal\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"  # Ctrl-C is the run's to handle
    "while True:\n"
    "    pass\n"
)


def _burner_setup(nice: int) -> None:
    if sys.platform.startswith("linux"):  # killed with the run, however it ends
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if nice:
        os.nice(nice)


class Burners:
    """K busy processes: the machine's CPU saturated by other processes."""

    def __init__(self, count: int, nice: int) -> None:
        self.count = count
        self.nice = nice
        self.procs: list[subprocess.Popen[bytes]] = []
        self._ps: list[psutil.Process] = []

    def start(self) -> None:
        for _ in range(self.count):
            proc = subprocess.Popen(
                [sys.executable, "-c", _BURN],
                stdin=subprocess.DEVNULL,
                preexec_fn=lambda: _burner_setup(self.nice),
            )
            self.procs.append(proc)
            with contextlib.suppress(psutil.Error):
                self._ps.append(psutil.Process(proc.pid))

    def cpu_s(self) -> float:
        total = 0.0
        for proc in self._ps:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.procs.clear()
        self._ps.clear()

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)


def machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


# -- requests and their checks --------------------------------------------------------------


@dataclass
class Spec:
    rid: str
    kind: str  # text | tool
    stream: bool
    offer_tools: bool

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": f"Stress request {script.marker(self.kind, self.rid)}: answer "
                    "as scripted.",
                }
            ],
        }
        if self.offer_tools:
            body["tools"] = script.TOOLS
        if self.stream:
            body["stream"] = True
        return body


@dataclass
class Answer:
    """What the client received."""

    status: int | None = None
    content: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str | None = None
    #: Protocol faults of a stream (or body) that are not about the content.
    faults: list[str] = field(default_factory=list)
    error: str = ""
    chunks: int = 0


@dataclass
class Result:
    phase: str
    spec: Spec
    verdict: str
    detail: str
    t0: float
    t1: float
    answer: Answer

    @property
    def latency(self) -> float:
        return self.t1 - self.t0


def _parse_arguments(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return f"<not JSON: {text!r}>"


async def _send_plain(client: httpx.AsyncClient, url: str, headers: Any, spec: Spec) -> Answer:
    answer = Answer()
    response = await client.post(url, headers=headers, json=spec.body())
    answer.status = response.status_code
    if response.status_code != 200:
        answer.error = f"HTTP {response.status_code}: {response.text[:300]}"
        return answer
    try:
        body = response.json()
        choice = body["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        answer.error = f"unreadable body ({exc!r}): {response.text[:300]}"
        return answer
    answer.chunks = 1
    answer.content = message.get("content") or ""
    answer.finish = choice.get("finish_reason")
    if body.get("object") != "chat.completion":
        answer.faults.append(f"object {body.get('object')!r}")
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        if call.get("type") != "function":
            answer.faults.append(f"tool call type {call.get('type')!r}")
        answer.calls.append(
            {
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": _parse_arguments(function.get("arguments")),
            }
        )
    return answer


async def _send_stream(client: httpx.AsyncClient, url: str, headers: Any, spec: Spec) -> Answer:
    answer = Answer()
    calls: dict[int, dict[str, Any]] = {}
    finishes: list[str] = []
    done = False
    async with client.stream("POST", url, headers=headers, json=spec.body()) as response:
        answer.status = response.status_code
        if response.status_code != 200:
            await response.aread()
            answer.error = f"HTTP {response.status_code}: {response.text[:300]}"
            return answer
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if done:
                answer.faults.append(f"data after [DONE]: {data[:100]}")
                continue
            if data == "[DONE]":
                done = True
                continue
            try:
                chunk = json.loads(data)
            except ValueError:
                answer.faults.append(f"chunk not JSON: {data[:100]}")
                continue
            if "error" in chunk:
                answer.error = f"error event: {json.dumps(chunk['error'])[:300]}"
                return answer
            answer.chunks += 1
            if chunk.get("object") != "chat.completion.chunk":
                answer.faults.append(f"object {chunk.get('object')!r}")
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                answer.content += delta.get("content") or ""
                for tc in delta.get("tool_calls") or ():
                    index = tc.get("index")
                    function = tc.get("function") or {}
                    if index not in calls:
                        if not (
                            tc.get("id") and tc.get("type") == "function" and function.get("name")
                        ):
                            answer.faults.append(f"first delta of call {index} lacks id/type/name")
                        calls[index] = {
                            "id": tc.get("id"),
                            "name": function.get("name"),
                            "arguments": "",
                        }
                    elif tc.get("id") or function.get("name"):
                        answer.faults.append(f"call {index}: id or name repeated in a later delta")
                    calls[index]["arguments"] += function.get("arguments") or ""
                if choice.get("finish_reason") is not None:
                    finishes.append(choice["finish_reason"])
    if not done:
        answer.error = "the stream ended without [DONE]"
    if len(finishes) != 1:
        answer.faults.append(f"{len(finishes)} finish_reasons: {finishes}")
    answer.finish = finishes[-1] if finishes else None
    for index in sorted(calls, key=lambda i: (not isinstance(i, int), i)):
        call = calls[index]
        answer.calls.append({**call, "arguments": _parse_arguments(call["arguments"])})
    return answer


def _text_difference(got: str, want: str) -> str:
    if not got:
        return "empty"
    if want.startswith(got):
        return f"incomplete: {len(got)} of {len(want)} chars"
    if got.startswith(want):
        return f"extra text after the {len(want)} expected chars: {got[len(want) :][:80]!r}"
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), 0)
    return f"differs at char {at}: got {got[at : at + 40]!r}, want {want[at : at + 40]!r}"


def judge(spec: Spec, answer: Answer) -> tuple[str, str]:
    """The verdict on one answer (see VERDICTS) and a line saying why."""
    if answer.error:
        return "error", answer.error
    faults = "; ".join(answer.faults)
    if spec.kind == "tool":
        call_id, name, arguments = script.expected_call(spec.rid)
        if not answer.calls:
            return "lost", (
                f"no tool call; content {answer.content[:80]!r}, finish_reason {answer.finish!r}"
            )
        want = [{"id": call_id, "name": name, "arguments": arguments}]
        problems = []
        if answer.calls != want:
            problems.append(f"calls {json.dumps(answer.calls, ensure_ascii=False)[:300]}")
        if answer.finish != "tool_calls":
            problems.append(f"finish_reason {answer.finish!r}")
        if answer.content:
            problems.append(f"text {answer.content[:80]!r}")
        if faults:
            problems.append(faults)
        return ("wrong_call", "; ".join(problems)) if problems else ("ok", "")
    problems = []
    want_text = script.expected_text(spec.rid)
    if answer.content != want_text:
        problems.append(_text_difference(answer.content, want_text))
    if answer.finish != "stop":
        problems.append(f"finish_reason {answer.finish!r}")
    if answer.calls:
        problems.append(f"tool calls {json.dumps(answer.calls, ensure_ascii=False)[:200]}")
    if faults:
        problems.append(faults)
    return ("wrong_text", "; ".join(problems)) if problems else ("ok", "")


class Client:
    def __init__(self, http: httpx.AsyncClient, gateway: Gateway, deadline_s: float) -> None:
        self.http = http
        self.url = f"{gateway.url}/v1/chat/completions"
        self.headers = gateway.headers
        self.deadline_s = deadline_s

    async def send(self, phase: str, spec: Spec) -> Result:
        t0 = time.monotonic()
        send = _send_stream if spec.stream else _send_plain
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # (Ctrl-C) that lands as the request completes.
            async with asyncio.timeout(self.deadline_s):
                answer = await send(self.http, self.url, self.headers, spec)
        except TimeoutError:
            answer = Answer(error=f"no answer within {self.deadline_s:g} s")
        except httpx.HTTPError as exc:
            answer = Answer(error=f"{type(exc).__name__}: {exc}"[:300])
        verdict, detail = judge(spec, answer)
        return Result(phase, spec, verdict, detail, t0, time.monotonic(), answer)


# -- the tap: what OpenCode published, per request -------------------------------------------


def _session_of(props: dict[str, Any]) -> str | None:
    for holder in (props, props.get("part") or {}, props.get("info") or {}):
        sid = holder.get("sessionID")
        if isinstance(sid, str):
            return sid
    return None


def _label(event: dict[str, Any]) -> str:
    """One event in a few characters: type and what matters of it."""
    kind = str(event.get("type"))
    props = event.get("properties") or {}
    if kind == "message.updated":
        info = props.get("info") or {}
        label = f"message.updated {info.get('role')}"
        if info.get("finish"):
            label += f" finish={info['finish']}"
        if info.get("error"):
            label += f" error={(info['error'] or {}).get('name')}"
        if (info.get("time") or {}).get("completed"):
            label += " completed"
        return label
    if kind == "message.part.updated":
        part = props.get("part") or {}
        label = f"part {part.get('type')}"
        if part.get("type") == "tool":
            state = part.get("state") or {}
            label += f" {part.get('tool')} {state.get('status')}"
        elif part.get("type") == "step-finish":
            label += f" reason={part.get('reason')}"
        return label
    if kind == "message.part.delta":
        return f"delta {props.get('field')}"
    if kind == "session.status":
        return f"status {(props.get('status') or {}).get('type')}"
    if kind == "session.error":
        return f"session.error {(props.get('error') or {}).get('name')}"
    return kind


@dataclass
class TurnLog:
    rid: str
    session: str
    #: (monotonic time received, label)
    events: list[tuple[float, str]] = field(default_factory=list)

    def until_idle(self) -> list[tuple[float, str]]:
        for i, (_, label) in enumerate(self.events):
            if label == "session.idle":
                return self.events[: i + 1]
        return self.events

    def early_finish(self) -> bool:
        """An assistant `message.updated` already carried a finish before that turn's first
        part (`step-start`) was published: OpenCode sent the message's final state first."""
        for _, label in self.until_idle():
            if label == "part step-start":
                return False
            if label.startswith("message.updated assistant finish="):
                return True
        return False

    def max_gap(self) -> float:
        events = self.until_idle()
        return max((b[0] - a[0] for a, b in itertools.pairwise(events)), default=0.0)

    def signature(self) -> str:
        """The labels up to session.idle, repeats collapsed (`delta text+`)."""
        out: list[str] = []
        for _, label in self.until_idle():
            if out and out[-1].rstrip("+") == label:
                out[-1] = label + "+"
            else:
                out.append(label)
        return " > ".join(out)


class Tap:
    """A `/event` reader per OpenCode workspace, sorting events into turns by their marker."""

    def __init__(self, http: httpx.AsyncClient, target: OpenCodeTarget) -> None:
        self.http = http
        self.target = target
        self.turns: dict[str, TurnLog] = {}
        self.current: dict[str, TurnLog] = {}  # session -> the turn it is on now
        self.pending: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.breaks = 0
        self.other = Counter[str]()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected: list[asyncio.Event] = []

    async def start(self, directories: list[str], timeout: float = 30.0) -> None:
        for directory in directories:
            ready = asyncio.Event()
            self._connected.append(ready)
            self._tasks.append(asyncio.create_task(self._read(directory, ready)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._connected)), timeout)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read(self, directory: str, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self.http.stream(
                    "GET",
                    f"{self.target.url}/event",
                    params={"directory": directory},
                    headers=self.target.headers,
                    timeout=httpx.Timeout(None, connect=10.0),
                ) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            self._take(time.monotonic(), json.loads(line[5:]), ready)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                say(f"tap: event stream of {directory} broke ({exc!r}); reconnecting")
            self.breaks += 1
            await asyncio.sleep(0.2)

    def _take(self, t: float, event: dict[str, Any], ready: asyncio.Event) -> None:
        if event.get("type") == "server.connected":
            ready.set()
            return
        props = event.get("properties") or {}
        sid = _session_of(props)
        if sid is None:
            self.other[str(event.get("type"))] += 1
            return
        part = props.get("part") or {}
        if event.get("type") == "message.part.updated" and part.get("type") == "text":
            found = script.parse(str(part.get("text") or ""))
            if found is not None and found[1] not in self.turns:
                turn = TurnLog(found[1], sid)
                self.turns[found[1]] = turn
                # The user message's own update came just before its text part.
                previous = self.current.get(sid)
                keep: list[tuple[float, str]] = []
                for at, held in self.pending.pop(sid, []):
                    keep.append((at, _label(held)))
                if previous is not None:
                    while previous.events and previous.events[-1][1] == "message.updated user":
                        keep.insert(0, previous.events.pop())
                turn.events.extend(keep)
                self.current[sid] = turn
        turn = self.current.get(sid)
        if turn is None:
            self.pending.setdefault(sid, []).append((t, event))
            return
        turn.events.append((t, _label(event)))


def tap_directories(state_dir: Path) -> tuple[list[str], list[str]]:
    """The gateway's workspaces the stress requests use (main, and the stress tool set's), and
    those of them that do not exist."""
    tools = tuple(
        ClientTool(f["name"], f["description"], f["parameters"])
        for f in (t["function"] for t in script.TOOLS)
    )
    directories = [
        str((state_dir / "workspace").resolve()),
        str((state_dir / "toolsets" / toolset_key(tools)).resolve()),
    ]
    return directories, [d for d in directories if not Path(d).is_dir()]


# -- the run --------------------------------------------------------------------------------


@dataclass
class PhaseStats:
    name: str
    concurrency: int
    results: list[Result]
    wall_s: float
    machine_busy_pct: float
    burners_pct: float

    def count(self, verdict: str) -> int:
        return sum(1 for r in self.results if r.verdict == verdict)


class Stress:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.run_id = secrets.token_hex(3)
        self.counter = itertools.count(1)
        self.phases: list[PhaseStats] = []
        self.warmup: list[Result] = []
        self.tap: Tap | None = None
        self.served: Counter[str] = Counter()
        self.result: dict[str, Any] = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "plan": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(plan).items()},
            "environment": environment(),
            "argv": sys.argv,
        }
        self.gateway_log = ""
        #: The signal that asked the run to stop, if one did.
        self.stopping = ""

    def spec(self, kind: str, stream: bool, offer_tools: bool) -> Spec:
        return Spec(f"{self.run_id}_{next(self.counter):05d}", kind, stream, offer_tools)

    def specs(self, phase: Phase) -> list[Spec]:
        if phase.kind != "mixed":
            assert phase.stream is not None
            return [
                self.spec(phase.kind, phase.stream, phase.kind == "tool")
                for _ in range(phase.requests)
            ]
        shapes = [("text", False), ("tool", True), ("text", True), ("tool", False)]
        return [self.spec(*shapes[i % 4], offer_tools=True) for i in range(phase.requests)]

    def _on_signal(self, sig: signal.Signals, task: asyncio.Task[Any]) -> None:
        if not self.stopping:
            self.stopping = sig.name
            say(f"{sig.name}: stopping (the table covers what finished)")
            task.cancel()

    def _handle_signals(self) -> None:
        """SIGINT and SIGTERM cancel the run, so that its clean-up (burners first) runs. A
        SIGINT the run was started to ignore (a background job of a script) stays ignored."""
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) != signal.SIG_IGN:
                loop.add_signal_handler(sig, self._on_signal, sig, task)

    async def run(self, burners: Burners) -> None:
        plan = self.plan
        self._handle_signals()
        tmp = Path(tempfile.mkdtemp(prefix="opencode-openai-stress-"))
        served_log = tmp / "served.txt"
        upstream = Upstream(["--stress-log", str(served_log)])
        http = make_client()
        gateway: Gateway | None = None
        self.result["tmp"] = str(tmp)
        try:
            if in_git_work_tree(plan.state_dir):
                say(
                    f"warning: {plan.state_dir} is inside a git work tree: OpenCode will "
                    "snapshot it on every turn (pass --state-dir elsewhere)"
                )
            await upstream.start()
            config = write_opencode_config(tmp / "opencode-extra.json", upstream.base_url)
            (tmp / "gateway").mkdir()
            gateway = Gateway(tmp / "gateway", config, plan.state_dir, plan.gateway_args)
            say(f"starting the gateway and its OpenCode (state in {plan.state_dir})")
            t0 = time.perf_counter()
            await gateway.start(http, 240)
            self.result["startup_s"] = round(time.perf_counter() - t0, 1)
            client = Client(http, gateway, plan.deadline_s)
            say(f"started in {self.result['startup_s']} s; warming up (no burners yet)")
            for kind, stream in itertools.product(("text", "tool"), (False, True)):
                for _ in range(plan.warmup):
                    result = await client.send("warmup", self.spec(kind, stream, kind == "tool"))
                    self.warmup.append(result)
                    if result.verdict != "ok":
                        say(f"warm-up {kind} stream={stream}: {result.verdict}: {result.detail}")
            if plan.tap:
                await self.start_tap(http, gateway)
            if plan.burners:
                burners.start()
                say(f"{burners.alive()} CPU burners started (nice {plan.burner_nice})")
                await asyncio.sleep(1.0)
            for phase in plan.phases:
                await self.run_phase(client, phase, burners)
            burners.stop()
            await asyncio.sleep(1.0)  # the last served ids reach the log
        finally:
            burners.stop()
            if self.tap is not None:
                with contextlib.suppress(Exception):
                    await self.tap.aclose()
            for stop in (gateway.stop if gateway else None, upstream.stop):
                if stop is not None:
                    with contextlib.suppress(Exception):
                        await stop()
            await http.aclose()
            if served_log.exists():
                for line in served_log.read_text().splitlines():
                    _, _, rid = line.partition(" ")
                    self.served[rid] += 1
            if gateway is not None and gateway.log_path.exists():
                self.gateway_log = gateway.log_path.read_text(errors="replace")
            if not plan.keep:
                shutil.rmtree(tmp, ignore_errors=True)

    async def start_tap(self, http: httpx.AsyncClient, gateway: Gateway) -> None:
        [(_, target), *_] = gateway.opencodes()
        directories, missing = tap_directories(self.plan.state_dir)
        if missing:
            say(f"tap: no workspace at {missing}; running without the tap")
            return
        self.tap = Tap(http, target)
        try:
            await self.tap.start(directories)
        except TimeoutError:
            say("tap: OpenCode's /event did not connect; running without the tap")
            await self.tap.aclose()
            self.tap = None

    async def run_phase(self, client: Client, phase: Phase, burners: Burners) -> None:
        specs = self.specs(phase)
        say(f"phase {phase.name}: {len(specs)} requests at concurrency {phase.concurrency}")
        queue = list(reversed(specs))
        results: list[Result] = []

        async def worker() -> None:
            while queue and not self.stopping:
                result = await client.send(phase.name, queue.pop())
                results.append(result)
                if result.verdict != "ok":
                    say(
                        f"  {result.spec.rid} {result.spec.kind} stream={result.spec.stream}: "
                        f"{result.verdict}: {result.detail}"
                    )

        busy0, burn0, t0 = machine_busy_s(), burners.cpu_s(), time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(phase.concurrency)))
        finally:  # a stopped run still reports the requests of its last phase that finished
            wall = time.perf_counter() - t0
            cores = os.cpu_count() or 1
            stats = PhaseStats(
                phase.name + (" (cut)" if len(results) < len(specs) else ""),
                phase.concurrency,
                sorted(results, key=lambda r: r.spec.rid),
                wall,
                100 * (machine_busy_s() - busy0) / (wall * cores),
                100 * (burners.cpu_s() - burn0) / wall,
            )
            if results:
                self.phases.append(stats)
        bad = len(results) - stats.count("ok")
        say(f"  {stats.count('ok')}/{len(results)} ok, {bad} not, in {wall:.1f} s")

    # -- what came out -----------------------------------------------------------------------

    def failures(self) -> list[Result]:
        return [r for p in self.phases for r in p.results if r.verdict != "ok"]

    def timeline(self, result: Result) -> list[str]:
        if self.tap is None:
            return []
        turn = self.tap.turns.get(result.spec.rid)
        if turn is None:
            return ["(the tap saw no event of this request)"]
        lines = [
            f"session {turn.session}; client sent at +0.000 s, got its answer at "
            f"+{result.latency:.3f} s"
        ]
        previous = None
        for at, label in turn.events[:80]:
            gap = "" if previous is None else f"  (+{at - previous:.3f})"
            lines.append(f"{at - result.t0:+8.3f} s  {label}{gap}")
            previous = at
        if len(turn.events) > 80:
            lines.append(f"... {len(turn.events) - 80} more")
        return lines

    def tap_summary(self) -> dict[str, Any]:
        if self.tap is None:
            return {}
        verdicts = {r.spec.rid: r for p in self.phases for r in p.results}
        by_kind: dict[str, dict[str, Any]] = {}
        for kind in ("text", "tool"):
            turns = [
                (t, verdicts[rid])
                for rid, t in self.tap.turns.items()
                if rid in verdicts and verdicts[rid].spec.kind == kind
            ]
            signatures = Counter(t.signature() for t, _ in turns)
            silent = [(t, r) for t, r in turns if t.max_gap() >= SILENCE_S]
            early = [(t, r) for t, r in turns if t.early_finish()]
            by_kind[kind] = {
                "turns_seen": len(turns),
                "turns_not_ok": sum(1 for _, r in turns if r.verdict != "ok"),
                "early_finish": len(early),
                "early_finish_not_ok": sum(1 for _, r in early if r.verdict != "ok"),
                "not_ok_without_early_finish": sum(
                    1 for t, r in turns if r.verdict != "ok" and not t.early_finish()
                ),
                f"turns_with_a_gap_of_{SILENCE_S:g}s_or_more": len(silent),
                "of_those_not_ok": sum(1 for _, r in silent if r.verdict != "ok"),
                "max_gap_s": round(max((t.max_gap() for t, _ in turns), default=0.0), 3),
                "signatures": signatures.most_common(),
                "signatures_not_ok": Counter(
                    t.signature() for t, r in turns if r.verdict != "ok"
                ).most_common(),
            }
        seen = {r.spec.rid for p in self.phases for r in p.results} & set(self.tap.turns)
        return {
            "requests_seen": len(seen),
            "stream_breaks": self.tap.breaks,
            "events_without_session": dict(self.tap.other),
            **by_kind,
        }

    def report(self) -> tuple[str, int]:
        header = (
            f"{'phase':<24} {'c':>3} {'requests':>8} {'ok':>5} {'lost tool':>9} "
            f"{'wrong tool':>10} {'wrong text':>10} {'errors':>6} {'wall s':>7} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'CPU busy':>8} {'burners':>8}"
        )
        lines = [header, "-" * len(header)]

        def row(name: str, c: str, results: list[Result], wall: float, busy: str, burn: str) -> str:
            counts = Counter(r.verdict for r in results)
            latencies = [1000 * r.latency for r in results if r.verdict == "ok"]
            return (
                f"{name:<24} {c:>3} {len(results):>8} {counts['ok']:>5} {counts['lost']:>9} "
                f"{counts['wrong_call']:>10} {counts['wrong_text']:>10} {counts['error']:>6} "
                f"{wall:>7.1f} {percentile(latencies, 50):>7.0f} {percentile(latencies, 99):>7.0f}"
                f" {busy:>8} {burn:>8}"
            )

        everything: list[Result] = []
        for p in self.phases:
            everything += p.results
            lines.append(
                row(
                    p.name,
                    str(p.concurrency),
                    p.results,
                    p.wall_s,
                    f"{p.machine_busy_pct:.0f}%",
                    f"{p.burners_pct:.0f}%",
                )
            )
        lines.append("-" * len(header))
        lines.append(row("all", "", everything, sum(p.wall_s for p in self.phases), "", ""))
        cores = os.cpu_count() or 1
        lines.append(
            f"CPU busy: the whole machine, % of its {cores} cores; burners: their share, % of one "
            f"core ({self.plan.burners} burners, nice {self.plan.burner_nice})."
        )
        answered = [r for r in everything if r.verdict != "error"]
        multi = [r for r in answered if self.served[r.spec.rid] != 1]
        lines.append(
            f"upstream calls: {sum(self.served[r.spec.rid] for r in everything)} for "
            f"{len(everything)} requests; answered requests with other than exactly one: "
            f"{len(multi)}"
            + (
                " ("
                + ", ".join(f"{r.spec.rid}: {self.served[r.spec.rid]}" for r in multi[:5])
                + ")"
                if multi
                else ""
            )
        )
        warm_bad = [r for r in self.warmup if r.verdict != "ok"]
        if warm_bad:
            lines.append(
                f"warm-up (not in the table): {len(warm_bad)} of {len(self.warmup)} not ok"
            )
        failures = self.failures()
        if failures:
            lines.append("")
            lines.append(f"not ok ({len(failures)}):")
            for i, r in enumerate(failures[:20]):
                lines.append(
                    f"  {r.spec.rid} {r.phase} {r.spec.kind} "
                    f"{'stream' if r.spec.stream else 'plain'}: {r.verdict}: {r.detail}"
                )
                if i < 2:  # what OpenCode published for it; every one's is in the JSON
                    lines.extend("      " + line for line in self.timeline(r)[:40])
            if len(failures) > 20:
                lines.append(f"  ... {len(failures) - 20} more (JSON)")
        tap = self.tap_summary()
        if tap:
            lines.append("")
            lines.append(
                f"tap (OpenCode's /event as a second reader saw it): {tap['requests_seen']} of "
                f"{len(everything)} requests; stream breaks {tap['stream_breaks']}"
            )
            for kind in ("text", "tool"):
                k = tap[kind]
                gap = f"turns_with_a_gap_of_{SILENCE_S:g}s_or_more"
                lines.append(
                    f"  {kind}: {k['turns_seen']} turns ({k['turns_not_ok']} not ok). Early "
                    f"finish (an assistant message.updated carrying its finish before the turn's "
                    f"first part): {k['early_finish']} turns, {k['early_finish_not_ok']} of them "
                    f"not ok; not ok without one: {k['not_ok_without_early_finish']}. Max gap "
                    f"between events {k['max_gap_s']} s; {k[gap]} turns with a gap >= "
                    f"{SILENCE_S:g} s ({k['of_those_not_ok']} not ok). "
                    f"{len(k['signatures'])} distinct event orders (JSON)."
                )
                if k["signatures_not_ok"]:
                    signature, n = k["signatures_not_ok"][0]
                    lines.append(f"    commonest order of the not ok ({n}): {signature}")
        warnings = [
            line
            for line in self.gateway_log.splitlines()
            if line.strip() and "Traceback" not in line
        ]
        if warnings:
            lines.append("")
            lines.append(f"gateway log ({len(warnings)} lines, last 10):")
            lines.extend("  " + line[:200] for line in warnings[-10:])
        lost_or_wrong = sum(1 for r in failures if r.verdict != "error")
        code = 1 if lost_or_wrong else 2 if failures else 0
        verdict = (
            f"FAIL: {lost_or_wrong} lost or wrong answers"
            if lost_or_wrong
            else f"FAIL: {len(failures)} errors"
            if failures
            else "PASS: 0 lost, 0 wrong, 0 errors"
        )
        if self.stopping:
            verdict = f"STOPPED by {self.stopping}, so not a proof; so far {verdict}"
        lines.append("")
        lines.append(f"{verdict} of {len(everything)} requests")
        return "\n".join(lines), code

    def to_json(self, table: str, code: int) -> dict[str, Any]:
        def result_json(r: Result) -> dict[str, Any]:
            return {
                "rid": r.spec.rid,
                "phase": r.phase,
                "kind": r.spec.kind,
                "stream": r.spec.stream,
                "verdict": r.verdict,
                "detail": r.detail,
                "latency_s": round(r.latency, 3),
                "upstream_calls": self.served[r.spec.rid],
                "answer": asdict(r.answer),
                "timeline": self.timeline(r),
            }

        return {
            **self.result,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "exit_code": code,
            "table": table,
            "phases": [
                {
                    "name": p.name,
                    "concurrency": p.concurrency,
                    "requests": len(p.results),
                    **{v: p.count(v) for v in VERDICTS},
                    "wall_s": round(p.wall_s, 2),
                    "machine_busy_pct": round(p.machine_busy_pct, 1),
                    "burners_pct_of_one_core": round(p.burners_pct, 1),
                }
                for p in self.phases
            ],
            "not_ok": [result_json(r) for r in self.failures()],
            "warmup_not_ok": [result_json(r) for r in self.warmup if r.verdict != "ok"],
            "tap": self.tap_summary(),
            "gateway_log_tail": self.gateway_log[-4000:],
        }


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    stress = Stress(plan)
    burners = Burners(plan.burners, plan.burner_nice)

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    started = time.perf_counter()
    say(
        f"run {stress.run_id}: {sum(p.requests for p in plan.phases)} requests in "
        f"{len(plan.phases)} phases, concurrency {plan.concurrency}, {plan.burners} burners"
    )
    interrupted = False
    try:
        runner(stress.run(burners))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not stress.stopping:
            say("interrupted (the table covers what finished)")
            stress.stopping = "KeyboardInterrupt"
        interrupted = True
    finally:
        burners.stop()
    table, code = stress.report()
    if interrupted:
        code = 130
    result = stress.to_json(table, code)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    plan.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = plan.out / f"stress-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str, ensure_ascii=False) + "\n")
    print(table)
    print(f"\n{result['wall_s']:g} s in all; JSON: {os.path.relpath(path)}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
