"""`python -m bench`: the gateway against driving OpenCode directly, measured in one run.

It starts the fake upstream (tiny echo replies) and the gateway as a process of its own with its
embedded OpenCode. The baseline drives that same OpenCode process directly, in a workspace of its
own prepared like the gateway's (same agent and plugin); then it measures, one phase after another:

1. latency at concurrency 1 (naive baseline, the same calls direct, gateway), interleaved;
2. time to first token, streamed (direct `prompt_async` + first `/event` delta vs gateway);
3. throughput at concurrency 10 and 50 (naive baseline vs gateway, in alternating slices);
4. N concurrent streams against the gateway (completed / 429 / errors / hung);
5. a soak at concurrency 10 (RSS growth of the gateway and its OpenCode, sessions left in
   OpenCode), during which py-spy samples the gateway from outside (where its CPU goes).

It prints a table of gateway/baseline ratios with the targets of issue 8 and writes everything
to bench/results/<timestamp>.json. Figures are for comparison within a run: every phase reports
the CPU the machine spent on other processes, which makes a noisy run visible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from opencode_openai.backend.workspace import prepare_workspace

from . import profile as pyspy
from .load import (
    CpuWindow,
    GatewayDriver,
    OpenCodeDriver,
    Outcome,
    burst,
    closed_loop,
    interleaved,
    make_client,
)
from .procs import ROOT, Gateway, Meter, Sampler, Upstream, environment, write_opencode_config
from .report import Row, fmt, ratio, summary, table, verdict

log = logging.getLogger("bench")

RESULTS = ROOT / "bench" / "results"
#: The OpenCode state (workspace, isolated home) of both sides, kept between runs. Not inside
#: the repository: OpenCode snapshots the enclosing git work tree of its workspace on every turn
#: (git write-tree of the whole checkout), which doubles its CPU per request.
STATE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "opencode-openai-bench"


def in_git_work_tree(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"


# Targets of issue 8.
OVERHEAD_MS, OVERHEAD_PCT = 3.0, 5.0
#: The Messages route's cost over the chat route's at concurrency 1 (issue 17's aim).
MESSAGES_MS = 1.0
TTFT_ADDED_MS = 5.0
GATEWAY_RSS_MB = 150.0
BEAT_NAIVE = 0.8
#: "No growth" over the soak: RSS of its last quarter over its first quarter, at most this much
#: (OpenCode's garbage-collected heap swings by tens of MB; hence a share of it).
GROWTH_MB, GROWTH_PCT = 5.0, 5.0
#: Issue 8's aim for the pool: throughput with 2 OpenCode processes on 2 cores over 1.
SCALING_AIM = 1.7
#: Enough requests in flight to keep every worker of the pool busy.
SCALING_CONCURRENCY = 20
SCALING_SLICES = 6


@dataclass
class Plan:
    mode: str
    warmup: int
    c1_rounds: int
    ttft_rounds: int
    #: concurrency -> requests per slice; each side runs `slices` slices, alternating.
    throughput: dict[int, int]
    slices: int
    throughput_max_s: float
    #: Time cap of each concurrency-1 phase (latency, TTFT); counts are cut short past it.
    c1_max_s: float
    streams: int
    soak: int
    soak_concurrency: int
    soak_max_s: float
    deadline_s: float
    profile: bool
    #: Workers of a second gateway measured against this run's (0: no scaling phase), and
    #: requests per slice of that phase.
    scaling: int = 0
    scaling_per_slice: int = 120
    keep: bool = False
    gateway_args: list[str] = field(default_factory=list)
    out: Path = field(default=RESULTS)


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the gateway against driving OpenCode directly (issue 8).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts (about 3 minutes; soak 1,000 requests)"
    )
    parser.add_argument(
        "--soak",
        type=int,
        metavar="N",
        help="requests in the soak (default 10,000; 1,000 with --quick)",
    )
    parser.add_argument(
        "--streams",
        type=int,
        default=200,
        metavar="N",
        help="concurrent streaming clients in the burst (default 200)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=65.0,
        metavar="S",
        help="per-request deadline; past it a request counts as hung (default 65:"
        " the gateway's own 60 s timeout, plus 5 s)",
    )
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="do not sample the gateway with py-spy during the soak",
    )
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `opencode-openai server-openai`, repeatable "
        "(e.g. --gateway-arg=--timeout --gateway-arg=30000)",
    )
    parser.add_argument(
        "--scaling",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="N",
        help="last, compare throughput with a second gateway running N OpenCode "
        "workers (default N: 2), in alternating slices",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, workspaces)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.quick:
        plan = Plan(
            "quick",
            warmup=10,
            c1_rounds=80,
            ttft_rounds=80,
            throughput={10: 60, 50: 100},
            slices=2,
            throughput_max_s=15.0,
            c1_max_s=35.0,
            streams=args.streams,
            soak=1000,
            soak_concurrency=10,
            soak_max_s=90.0,
            deadline_s=args.deadline,
            profile=args.profile,
        )
    else:
        plan = Plan(
            "full",
            warmup=40,
            c1_rounds=300,
            ttft_rounds=300,
            throughput={10: 200, 50: 300},
            slices=6,
            throughput_max_s=60.0,
            c1_max_s=300.0,
            streams=args.streams,
            soak=10000,
            soak_concurrency=10,
            soak_max_s=1800.0,
            deadline_s=args.deadline,
            profile=args.profile,
        )
    if args.soak is not None:
        plan.soak = args.soak
    plan.keep, plan.out, plan.gateway_args = args.keep, args.out, args.gateway_arg
    plan.scaling = args.scaling
    if plan.mode == "full":
        plan.scaling_per_slice = 300
    return plan


class MachineMeter:
    """Busy CPU seconds of the whole machine (all cores), to tell what other processes used."""

    name = "machine"

    def cpu_s(self) -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    def rss_mb(self) -> float:
        return 0.0


def merge(windows: list[CpuWindow]) -> CpuWindow:
    """Several CPU windows as one (walls and CPU seconds added up)."""
    merged = CpuWindow([])
    merged.wall = sum(w.wall for w in windows)
    merged.cpu_s = {}
    for w in windows:
        for name, value in w.cpu_s.items():
            merged.cpu_s[name] = merged.cpu_s.get(name, 0.0) + value
    merged.percent = {name: 100.0 * v / merged.wall for name, v in merged.cpu_s.items()}
    return merged


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.result: dict[str, Any] = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "plan": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(plan).items()},
            "environment": environment(),
            "cpu": {},
        }
        self.meters: list[Any] = []
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    # -- helpers -----------------------------------------------------------------------------

    def cpu(self, phase: str) -> CpuWindow:
        return CpuWindow(self.meters)

    def record_cpu(self, phase: str, window: CpuWindow, requests: int = 0) -> dict[str, Any]:
        ours = sum(v for k, v in window.cpu_s.items() if k != "machine")
        entry: dict[str, Any] = {
            "wall_s": round(window.wall, 2),
            "percent_of_one_core": {k: round(v, 1) for k, v in window.percent.items()},
            "other_processes_percent": round(
                100 * (window.cpu_s["machine"] - ours) / window.wall, 1
            ),
        }
        if requests:
            entry["cpu_ms_per_request"] = {
                k: round(1000 * v / requests, 2) for k, v in window.cpu_s.items() if k != "machine"
            }
        self.result["cpu"][phase] = entry
        return entry

    def rss(self) -> dict[str, float]:
        return {m.name: round(m.rss_mb(), 1) for m in self.meters if m.name != "machine"}

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        tmp = Path(tempfile.mkdtemp(prefix="opencode-openai-bench-"))
        self.result["tmp"] = str(tmp)
        client = make_client()
        upstream = Upstream()
        gateway: Gateway | None = None
        direct: OpenCodeDriver | None = None
        try:
            say(f"{plan.mode} run; temporary files in {tmp}, OpenCode state in {STATE}")
            self.result["state_dir"] = str(STATE)
            self.result["state_in_git_work_tree"] = in_git_work_tree(STATE)
            if self.result["state_in_git_work_tree"]:
                say(
                    f"warning: {STATE} is inside a git work tree: OpenCode will snapshot it on "
                    "every turn (set XDG_CACHE_HOME elsewhere)"
                )
            await upstream.start()
            config = write_opencode_config(tmp / "opencode-extra.json", upstream.base_url)
            # The gateway's state dir is kept between runs, as a deployment keeps its own:
            # OpenCode installs its plugin SDK into a new isolated home once (~12 s, ~95 MB).
            (tmp / "gateway").mkdir()
            gateway = Gateway(tmp / "gateway", config, STATE / "gateway", plan.gateway_args)
            t0 = time.perf_counter()
            await gateway.start(client, 240)
            self.result["startup_s"] = round(time.perf_counter() - t0, 1)
            gateway_ocs = [OpenCodeDriver(client, t) for _, t in gateway.opencodes()]
            self.result["gateway_opencode_processes"] = len(gateway_ocs)
            self.meters = [
                Meter("load_generator", os.getpid()),
                Meter("upstream", upstream.pid),
                Meter("gateway", gateway.pid),
                Meter("gateway_opencode", gateway.pid, scope="below"),
                MachineMeter(),
            ]
            # The baseline drives the same OpenCode process as the gateway (its first), in a
            # workspace of its own made the same way: one process, so a difference between
            # the two sides is the gateway's, not one process's JIT, heap or luck against
            # another's; another directory, so the gateway's event reader never sees the
            # baseline's events.
            _, first = gateway.opencodes()[0]
            workspace = prepare_workspace(STATE / "direct" / "workspace")
            direct = OpenCodeDriver(client, replace(first, directory=str(workspace)))
            # Its first call loads the workspace (a new one installs the plugin SDK: seconds).
            await direct.start(timeout=180.0)
            gw = GatewayDriver(client, gateway.url, gateway.headers)
            say(f"started in {self.result['startup_s']} s; warming up")
            await self.warm_up(direct, gw)
            self.result["rss_idle_mb"] = self.rss()
            await self.latency(direct, gw)
            await self.ttft(direct, gw)
            await self.messages(gw)
            await self.throughput(direct, gw)
            await self.streams(gw)
            self.result["rss_after_load_mb"] = self.rss()
            await self.soak(gateway, gateway_ocs, direct, gw, client)
            if plan.scaling:
                await self.scaling(gw, client, config, tmp)
        finally:
            say("stopping")
            if direct is not None:
                with contextlib.suppress(Exception):
                    await direct.aclose()
            for stop in (gateway.stop if gateway else None, upstream.stop):
                if stop is not None:
                    with contextlib.suppress(Exception):
                        await stop()
            await client.aclose()
            if gateway is not None and gateway.log_path.exists():
                self.result["gateway_log_tail"] = gateway.log_path.read_text(errors="replace")[
                    -2000:
                ]
            if not plan.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        self.result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        return self.result

    async def warm_up(self, direct: OpenCodeDriver, gw: GatewayDriver) -> None:
        n = self.plan.warmup
        await interleaved(
            {
                "naive": direct.naive,
                "direct": direct.direct,
                "gateway": gw.chat,
                "gateway_stream": gw.stream,
            },
            n,
            self.plan.deadline_s,
            15.0,
        )
        # At some concurrency too, so both sides have met it before the measured phases.
        await closed_loop(direct.naive, 10, 3 * n, self.plan.deadline_s, 10)
        await closed_loop(gw.chat, 10, 3 * n, self.plan.deadline_s, 10)

    async def latency(self, direct: OpenCodeDriver, gw: GatewayDriver) -> None:
        n = self.plan.c1_rounds
        say(f"latency at concurrency 1: {n} rounds of naive / direct / gateway")
        with self.cpu("c1") as window:
            results = await interleaved(
                {"naive": direct.naive, "direct": direct.direct, "gateway": gw.chat},
                n,
                self.plan.deadline_s,
                self.plan.c1_max_s,
            )
        rounds = len(results["gateway"])
        self.record_cpu("c1", window, rounds)  # per round: one request of each kind
        # The floor of one round trip through the gateway, no OpenCode call: GET /v1/models.
        floor = await interleaved({"models": gw.models}, n, self.plan.deadline_s, 10.0)
        self.result["c1_floor"] = summary(floor["models"])
        self.result["c1"] = {name: summary(outcomes) for name, outcomes in results.items()}
        # Paired differences (same round) are less noisy than differences of percentiles.
        self.result["c1"]["paired_overhead_ms"] = self._paired(
            results["gateway"], results["direct"]
        )
        self.result["c1"]["paired_vs_naive_ms"] = self._paired(results["gateway"], results["naive"])

    @staticmethod
    def _paired(a: list[Outcome], b: list[Outcome], attr: str = "latency") -> dict[str, float]:
        diffs = [
            1000 * (getattr(x, attr) - getattr(y, attr))
            for x, y in zip(a, b, strict=False)
            if x.kind == y.kind == "ok"
            and getattr(x, attr) is not None
            and getattr(y, attr) is not None
        ]
        return {
            "median": round(statistics.median(diffs), 2) if diffs else float("nan"),
            "n": len(diffs),
        }

    async def messages(self, gw: GatewayDriver) -> None:
        """The Messages route against the chat route, the same turn, round by round at c=1."""
        n = self.plan.c1_rounds
        say(f"Messages API against chat at concurrency 1: {n} rounds")
        results = await interleaved(
            {"chat": gw.chat, "messages": gw.messages},
            n,
            self.plan.deadline_s,
            self.plan.c1_max_s,
        )
        self.result["messages"] = {name: summary(o) for name, o in results.items()}
        self.result["messages"]["paired_vs_chat_ms"] = self._paired(
            results["messages"], results["chat"]
        )

    async def ttft(self, direct: OpenCodeDriver, gw: GatewayDriver) -> None:
        n = self.plan.ttft_rounds
        say(f"time to first token: {n} rounds of direct prompt_async+/event / gateway stream")
        with self.cpu("ttft") as window:
            results = await interleaved(
                {"direct": direct.direct, "gateway": gw.stream},
                n,
                self.plan.deadline_s,
                self.plan.c1_max_s,
            )
        self.record_cpu("ttft", window, len(results["gateway"]))
        self.result["ttft"] = {name: summary(o, ttft=True) for name, o in results.items()}
        self.result["ttft"]["paired_added_ms"] = self._paired(
            results["gateway"], results["direct"], "ttft"
        )

    async def alternating(
        self,
        sides: dict[str, Any],
        concurrency: int,
        per_slice: int,
        phase: str,
        slices: int | None = None,
    ) -> dict[str, Any]:
        """Closed loops of each side in alternating slices (ABBA...), so that a change in what
        the rest of the machine does hits both sides alike; req/s, latency and CPU per side."""
        plan = self.plan
        outcomes: dict[str, list[Outcome]] = {name: [] for name in sides}
        elapsed = dict.fromkeys(sides, 0.0)
        windows: dict[str, list[CpuWindow]] = {name: [] for name in sides}
        for i in range(slices or plan.slices):
            for name in list(sides) if i % 2 == 0 else list(sides)[::-1]:
                with self.cpu(name) as window:
                    got, took = await closed_loop(
                        sides[name], concurrency, per_slice, plan.deadline_s, plan.throughput_max_s
                    )
                outcomes[name] += got
                elapsed[name] += took
                windows[name].append(window)
        entry: dict[str, Any] = {}
        for name in sides:
            ok = sum(1 for o in outcomes[name] if o.kind == "ok")
            entry[name] = {
                **summary(outcomes[name]),
                "elapsed_s": round(elapsed[name], 2),
                "req_per_s": round(ok / elapsed[name], 2) if elapsed[name] else 0.0,
                "cpu": self.record_cpu(
                    f"{phase}_{name}", merge(windows[name]), len(outcomes[name])
                ),
            }
        return entry

    async def throughput(self, direct: OpenCodeDriver, gw: GatewayDriver) -> None:
        plan = self.plan
        self.result["throughput"] = {}
        for concurrency, per_slice in plan.throughput.items():
            say(
                f"throughput at concurrency {concurrency}: {plan.slices} slices of {per_slice} "
                "requests per side, naive and gateway alternating"
            )
            self.result["throughput"][str(concurrency)] = await self.alternating(
                {"naive": direct.naive, "gateway": gw.chat},
                concurrency,
                per_slice,
                f"c{concurrency}",
            )

    async def scaling(self, gw: GatewayDriver, client: Any, config: Path, tmp: Path) -> None:
        """This run's gateway against a second one with `--opencode-workers N`, same run.

        The figure of the pool: how throughput grows with OpenCode processes on this machine,
        where the load generator, the fake upstream and the gateway share the cores too.
        """
        plan = self.plan
        workers = plan.scaling
        name = f"gateway-{workers}w"
        (tmp / name).mkdir()
        other = Gateway(
            tmp / name,
            config,
            STATE / name,
            [*plan.gateway_args, "--opencode-workers", str(workers)],
        )
        say(f"scaling: starting a gateway with {workers} OpenCode workers")
        try:
            await other.start(client, 240)
            pooled = GatewayDriver(client, other.url, other.headers)
            sides = {"gateway": gw.chat, "pool": pooled.chat}
            c, per_slice = SCALING_CONCURRENCY, plan.scaling_per_slice
            for request in sides.values():  # both warm, at this concurrency
                await closed_loop(request, c, 3 * c, plan.deadline_s, 30.0)
            # More slices than the other phases: this machine's speed drifts over tens of
            # seconds, and a slice of each side must meet every state of it.
            slices = max(plan.slices, SCALING_SLICES)
            say(
                f"scaling: {slices} slices of {per_slice} requests at concurrency {c}, "
                f"1 worker and {workers} alternating"
            )
            self.result["scaling"] = {
                "workers": workers,
                "concurrency": c,
                "slices": slices,
                **await self.alternating(sides, c, per_slice, "scaling", slices),
            }
        finally:
            await other.stop()

    async def streams(self, gw: GatewayDriver) -> None:
        n = self.plan.streams
        say(f"{n} concurrent streaming clients against the gateway")
        sampler = Sampler([m for m in self.meters if m.name in ("gateway", "gateway_opencode")])
        with self.cpu("streams") as window:
            async with sampler:
                outcomes, elapsed = await burst(gw.stream, n, self.plan.deadline_s)
        self.result["streams"] = {
            **summary(outcomes, ttft=True),
            "elapsed_s": round(elapsed, 2),
            "peak_rss_mb": {
                "gateway": round(sampler.peak("gateway"), 1),
                "gateway_opencode": round(sampler.peak("gateway_opencode"), 1),
            },
            "cpu": self.record_cpu("streams", window, n),
        }

    async def soak(
        self,
        gateway: Gateway,
        gateway_ocs: list[OpenCodeDriver],
        direct: OpenCodeDriver,
        gw: GatewayDriver,
        client: Any,
    ) -> None:
        plan = self.plan
        say(
            f"soak: {plan.soak} gateway requests at concurrency {plan.soak_concurrency} "
            "(one in four streamed)"
        )
        counter = iter(range(10**12))

        async def mixed() -> Outcome:
            return await (gw.stream() if next(counter) % 4 == 3 else gw.chat())

        await asyncio.sleep(1.0)
        before = self.rss()
        sessions_before = sum([len(await oc.sessions()) for oc in gateway_ocs])
        sampler = Sampler(
            [m for m in self.meters if m.name in ("gateway", "gateway_opencode")], 1.0
        )
        recorder = None
        if plan.profile:
            # py-spy runs outside the gateway and changes none of its code; the soak measures
            # memory and sessions, which sampling does not disturb.
            plan.out.mkdir(parents=True, exist_ok=True)
            recorder = pyspy.Recorder(gateway.pid, plan.out / f"{self.stamp}.pyspy.txt")
            await recorder.start()
        with self.cpu("soak") as window:
            async with sampler:
                outcomes, elapsed = await closed_loop(
                    mixed, plan.soak_concurrency, plan.soak, plan.deadline_s, plan.soak_max_s
                )
        if recorder is not None:
            await recorder.stop()
            if recorder.error:
                say(recorder.error)
                self.result["profile"] = {"error": recorder.error}
            else:
                self.result["profile"] = {
                    "raw": str(recorder.output),
                    "during": "soak",
                    "requests": len(outcomes),
                    **pyspy.summarise(recorder.output, recorder.seconds),
                }
        # Let background session clean-ups finish: poll until OpenCode holds no more sessions
        # than the gateway's pool says it keeps, or 15 s have passed.
        settle = time.monotonic() + 15
        while True:
            await asyncio.sleep(1.0)
            # Enumerated afresh: the gateway may have recycled an OpenCode meanwhile.
            gateway_ocs = [OpenCodeDriver(client, t) for _, t in gateway.opencodes()]
            sessions = [x for oc in gateway_ocs for x in await oc.sessions()]
            health = await gateway.health(client)
            pool = (health.get("backend") or {}).get("sessions") or {}
            pooled = int(pool.get("idle", 0)) + int(pool.get("in_use", 0))
            if len(sessions) <= pooled or time.monotonic() > settle:
                break
        after = self.rss()
        growth: dict[str, Any] = {}
        for name in ("gateway", "gateway_opencode"):
            series = sampler.series(name)
            quarter = max(1, len(series) // 4)
            first, last = series[:quarter], series[-quarter:]
            growth[name] = {
                "before_mb": before[name],
                "after_mb": after[name],
                "growth_mb": round(after[name] - before[name], 1),
                "quarter_growth_mb": round(statistics.median(last) - statistics.median(first), 1)
                if series
                else float("nan"),
                "peak_mb": round(max(series), 1) if series else float("nan"),
                "series_mb": [round(v, 1) for v in series],
            }
        self.result["soak"] = {
            **summary(outcomes),
            "elapsed_s": round(elapsed, 2),
            "req_per_s": round(sum(o.kind == "ok" for o in outcomes) / elapsed, 2),
            "rss": growth,
            "sessions_before": sessions_before,
            "sessions_left": len(sessions),
            "sessions_left_titles": sorted({str(x.get("title")) for x in sessions}),
            "settle_s": round(time.monotonic() - settle + 15, 1),
            "gateway_health": health.get("backend"),
            "direct_workspace_sessions_left": len(await direct.sessions()),
            "cpu": self.record_cpu("soak", window, len(outcomes)),
        }


# -- the table ------------------------------------------------------------------------------


def rows(r: dict[str, Any]) -> list[Row | str]:
    out: list[Row | str] = []
    c1 = r["c1"]
    naive, direct, gw = (
        c1["naive"]["latency_ms"],
        c1["direct"]["latency_ms"],
        c1["gateway"]["latency_ms"],
    )
    out.append(
        f"latency at concurrency 1, non-streamed, {c1['gateway']['n']} requests each; "
        "baseline = naive create session + POST /message"
    )
    for q in ("p50", "p95", "p99"):
        ok = gw[q] <= BEAT_NAIVE * naive[q] if q == "p50" else None
        out.append(
            Row(
                f"latency {q} (ms)",
                fmt(naive[q]),
                fmt(gw[q]),
                ratio(gw[q], naive[q]),
                f"<= {BEAT_NAIVE}x naive" if q == "p50" else "",
                verdict(ok),
            )
        )
    out.append(
        Row(
            "  same calls direct, p50 (ms)",
            fmt(direct["p50"]),
            fmt(gw["p50"]),
            ratio(gw["p50"], direct["p50"]),
        )
    )
    over = gw["p50"] - direct["p50"]
    pct = 100 * over / direct["p50"] if direct["p50"] else float("nan")
    out.append(
        Row(
            "  gateway overhead p50 (ms) vs direct",
            "",
            fmt(over),
            "",
            f"<= {OVERHEAD_MS:g} ms",
            verdict(over <= OVERHEAD_MS),
        )
    )
    out.append(
        Row(
            "  gateway overhead p50 (%) vs direct",
            "",
            fmt(pct),
            "",
            f"<= {OVERHEAD_PCT:g}%",
            verdict(pct <= OVERHEAD_PCT),
        )
    )
    paired = c1["paired_overhead_ms"]["median"]
    out.append(
        Row(
            "  overhead, median of paired diffs (ms)",
            "",
            fmt(paired),
            "",
            f"<= {OVERHEAD_MS:g} ms",
            verdict(paired <= OVERHEAD_MS),
        )
    )
    c1cpu = r["cpu"]["c1"]["cpu_ms_per_request"]
    # Not a target: CPU partly overlaps OpenCode's work, and at concurrency 1 every event
    # costs its own wake-up; the throughput phases show it per request under load.
    out.append(Row("  gateway process CPU per request (ms)", "", fmt(c1cpu["gateway"], 2)))
    floor = r["c1_floor"]["latency_ms"]
    out.append(Row("  gateway floor: GET /v1/models p50 (ms)", "", fmt(floor["p50"], 2)))
    if "opencode_events_per_turn" in c1["direct"]:
        out.append(
            Row(
                "  OpenCode events per turn (/event)", fmt(c1["direct"]["opencode_events_per_turn"])
            )
        )
    vs_naive = gw["p50"] - naive["p50"]
    out.append(Row("  gateway - naive p50 (ms)", "", fmt(vs_naive), "", "", ""))
    errs = sum(c1[k]["errors"] + c1[k]["hung"] for k in ("naive", "direct", "gateway"))
    out.append(
        Row(
            "  errors + hung",
            str(c1["naive"]["errors"] + c1["naive"]["hung"]),
            str(c1["gateway"]["errors"] + c1["gateway"]["hung"]),
            "",
            "0",
            verdict(errs == 0),
        )
    )

    if "messages" in r:
        m = r["messages"]
        out.append(
            f"Messages API against chat, non-streamed, concurrency 1, {m['messages']['n']} "
            "rounds; baseline = POST /v1/chat/completions"
        )
        chat_p50, messages_p50 = m["chat"]["latency_ms"]["p50"], m["messages"]["latency_ms"]["p50"]
        out.append(
            Row("latency p50 (ms)", fmt(chat_p50), fmt(messages_p50), ratio(messages_p50, chat_p50))
        )
        paired_m = m["paired_vs_chat_ms"]["median"]
        out.append(
            Row(
                "  Messages - chat, median of paired diffs (ms)",
                "",
                fmt(paired_m),
                "",
                f"<= {MESSAGES_MS:g} ms",
                verdict(paired_m <= MESSAGES_MS),
            )
        )

    t = r["ttft"]
    out.append(
        f"time to first token, streamed, {t['gateway']['n']} each; baseline = "
        "prompt_async + first message.part.delta on /event"
    )
    for q in ("p50", "p95", "p99"):
        d, g = t["direct"]["ttft_ms"][q], t["gateway"]["ttft_ms"][q]
        out.append(Row(f"TTFT {q} (ms)", fmt(d), fmt(g), ratio(g, d)))
    added = t["gateway"]["ttft_ms"]["p50"] - t["direct"]["ttft_ms"]["p50"]
    out.append(
        Row(
            "  TTFT added p50 (ms)",
            "",
            fmt(added),
            "",
            f"<= {TTFT_ADDED_MS:g} ms",
            verdict(added <= TTFT_ADDED_MS),
        )
    )
    paired = t["paired_added_ms"]["median"]
    out.append(
        Row(
            "  TTFT added, median of paired diffs (ms)",
            "",
            fmt(paired),
            "",
            f"<= {TTFT_ADDED_MS:g} ms",
            verdict(paired <= TTFT_ADDED_MS),
        )
    )

    out.append(
        f"throughput, non-streamed, closed loop, {r['plan']['slices']} alternating slices "
        "per side; baseline = naive"
    )
    for c, entry in r["throughput"].items():
        n, g = entry["naive"], entry["gateway"]
        out.append(
            Row(
                f"c={c} req/s",
                fmt(n["req_per_s"]),
                fmt(g["req_per_s"]),
                ratio(g["req_per_s"], n["req_per_s"]),
            )
        )
        out.append(
            Row(
                f"  c={c} latency p50 / p99 (ms)",
                f"{fmt(n['latency_ms']['p50'], 0)} / {fmt(n['latency_ms']['p99'], 0)}",
                f"{fmt(g['latency_ms']['p50'], 0)} / {fmt(g['latency_ms']['p99'], 0)}",
            )
        )
        bad_n = n["errors"] + n["hung"] + n["429"]
        bad_g = g["errors"] + g["hung"] + g["429"]
        out.append(
            Row(f"  c={c} errors+429+hung", str(bad_n), str(bad_g), "", "0", verdict(bad_g == 0))
        )
        gcpu = g["cpu"]["cpu_ms_per_request"]
        ncpu = n["cpu"]["cpu_ms_per_request"]
        out.append(Row(f"  c={c} CPU ms/request: gateway proc", "", fmt(gcpu["gateway"], 2)))
        out.append(
            Row(
                f"  c={c} CPU ms/request: OpenCode",
                fmt(ncpu["gateway_opencode"], 2),
                fmt(gcpu["gateway_opencode"], 2),
                ratio(gcpu["gateway_opencode"], ncpu["gateway_opencode"]),
            )
        )

    s = r["streams"]
    out.append(
        f"{s['n']} concurrent streams against the gateway (deadline "
        f"{r['plan']['deadline_s']:g} s each)"
    )
    out.append(
        Row(
            "completed / 429 / errors / hung",
            "",
            f"{s['ok']} / {s['429']} / {s['errors']} / {s['hung']}",
            "",
            "0 errors, 0 hung",
            verdict(s["errors"] == 0 and s["hung"] == 0),
        )
    )
    out.append(Row("  all streams done in (s)", "", fmt(s["elapsed_s"])))
    out.append(
        Row(
            "  TTFT p50 / p99 under the burst (ms)",
            "",
            f"{fmt(s['ttft_ms']['p50'], 0)} / {fmt(s['ttft_ms']['p99'], 0)}",
        )
    )

    idle, loaded = r["rss_idle_mb"], r["rss_after_load_mb"]
    out.append("memory (RSS, MB)")
    peak = max(s["peak_rss_mb"]["gateway"], loaded["gateway"])
    out.append(
        Row(
            "gateway RSS idle / after load",
            "",
            f"{fmt(idle['gateway'])} / {fmt(loaded['gateway'])}",
            "",
            f"<= {GATEWAY_RSS_MB:g} MB",
            verdict(max(idle["gateway"], loaded["gateway"]) <= GATEWAY_RSS_MB),
        )
    )
    out.append(
        Row(
            f"gateway RSS peak ({s['n']} streams)",
            "",
            fmt(peak),
            "",
            f"<= {GATEWAY_RSS_MB:g} MB",
            verdict(peak <= GATEWAY_RSS_MB),
        )
    )
    out.append(
        Row(
            "OpenCode RSS idle / after load (all processes)",
            "",
            f"{fmt(idle['gateway_opencode'])} / {fmt(loaded['gateway_opencode'])}",
        )
    )

    k = r["soak"]
    cut = (
        "" if k["n"] >= r["plan"]["soak"] else f" (cut by the time cap; {r['plan']['soak']} asked)"
    )
    out.append(
        f"soak{cut}: {k['n']} gateway requests at c={r['plan']['soak_concurrency']}, "
        f"{fmt(k['req_per_s'])} req/s, {fmt(k['elapsed_s'], 0)} s"
    )
    out.append(
        Row(
            "  completed / 429 / errors / hung",
            "",
            f"{k['ok']} / {k['429']} / {k['errors']} / {k['hung']}",
            "",
            "0 errors",
            verdict(k["errors"] == 0 and k["hung"] == 0),
        )
    )
    for name, label in (("gateway", "gateway"), ("gateway_opencode", "its OpenCode")):
        g = k["rss"][name]
        limit = max(GROWTH_MB, GROWTH_PCT / 100 * g["before_mb"])
        out.append(
            Row(
                f"  {label} RSS before -> after (MB)",
                "",
                f"{fmt(g['before_mb'])} -> {fmt(g['after_mb'])}",
                "",
                f"growth {fmt(g['growth_mb'])} MB",
            )
        )
        out.append(
            Row(
                f"  {label} RSS last vs first quarter (MB)",
                "",
                fmt(g["quarter_growth_mb"]),
                "",
                f"<= {fmt(limit)} MB",
                verdict(g["quarter_growth_mb"] <= limit),
            )
        )
    pool = (k["gateway_health"] or {}).get("sessions", {})
    pooled = int(pool.get("idle", 0)) + int(pool.get("in_use", 0))
    out.append(
        Row(
            "  sessions left in OpenCode",
            str(k["direct_workspace_sessions_left"]),
            str(k["sessions_left"]),
            "",
            f"<= pool ({pooled})",
            verdict(k["sessions_left"] <= pooled),
        )
    )

    if "scaling" in r:
        sc = r["scaling"]
        one, pool, workers = sc["gateway"], sc["pool"], sc["workers"]
        out.append(
            f"scaling: throughput at c={sc['concurrency']}, non-streamed, "
            f"{sc['slices']} alternating slices; baseline = this run's gateway, "
            f"against one with --opencode-workers {workers}"
        )
        gain = pool["req_per_s"] / one["req_per_s"] if one["req_per_s"] else float("nan")
        aim = workers == 2 and r["environment"]["cpus"] == 2
        out.append(
            Row(
                "req/s",
                fmt(one["req_per_s"]),
                fmt(pool["req_per_s"]),
                ratio(pool["req_per_s"], one["req_per_s"]),
                f">= {SCALING_AIM:g}x (aim)" if aim else "",
                verdict(gain >= SCALING_AIM) if aim else "",
            )
        )
        out.append(
            Row(
                "  latency p50 / p99 (ms)",
                f"{fmt(one['latency_ms']['p50'], 0)} / {fmt(one['latency_ms']['p99'], 0)}",
                f"{fmt(pool['latency_ms']['p50'], 0)} / {fmt(pool['latency_ms']['p99'], 0)}",
            )
        )
        out.append(
            Row(
                "  errors+429+hung",
                str(one["errors"] + one["hung"] + one["429"]),
                str(pool["errors"] + pool["hung"] + pool["429"]),
                "",
                "0",
                verdict(pool["errors"] + pool["hung"] + pool["429"] == 0),
            )
        )
        out.append(
            Row(
                "  machine CPU (% of one core)",
                fmt(one["cpu"]["percent_of_one_core"]["machine"], 0),
                fmt(pool["cpu"]["percent_of_one_core"]["machine"], 0),
            )
        )
        # One OpenCode at saturation uses more than a core (its runtime's own threads): the
        # cores divided by that bounds what N processes can gain here, before the gateway,
        # upstream and load generator take their share.
        busy = one["cpu"]["percent_of_one_core"]["gateway_opencode"]
        cores = 100 * r["environment"]["cpus"]
        out.append(
            Row(
                "  one OpenCode's CPU, saturated (% of one core)",
                fmt(busy, 0),
                "",
                "",
                f"ceiling {fmt(min(workers, cores / busy) if busy else float('nan'), 2)}x",
            )
        )

    out.append(f"load generator and machine (CPU, % of one core; {r['environment']['cpus']} cores)")
    cpu = r["cpu"]
    gen = max(v["percent_of_one_core"]["load_generator"] for v in cpu.values())
    worst = max(cpu.items(), key=lambda kv: kv[1]["percent_of_one_core"]["load_generator"])[0]
    out.append(Row("  load generator, busiest phase", "", f"{fmt(gen, 0)}% ({worst})"))
    # The scaling phase's second gateway is not metered: its CPU would read as "other".
    other = [v["other_processes_percent"] for k, v in cpu.items() if not k.startswith("scaling")]
    out.append(
        Row(
            "  other processes on the machine",
            "",
            f"{fmt(statistics.mean(other), 0)}% avg, {fmt(max(other), 0)}% max",
            "",
            "~0 for clean figures",
        )
    )
    return out


def write(result: dict[str, Any], out: Path, stamp: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="[bench] %(levelname)s %(message)s")
    plan = parse_args(argv)
    bench = Bench(plan)
    started = time.perf_counter()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        result = runner(bench.run())
    except KeyboardInterrupt:
        return 130
    result["wall_s"] = round(time.perf_counter() - started, 1)
    text = table(rows(result))
    result["table"] = text
    path = write(result, plan.out, bench.stamp)
    print(text)
    if "profile" in result:
        p = result["profile"]
        print()
        per = result.get("soak", {}).get("cpu", {}).get("cpu_ms_per_request", {}).get("gateway")
        print(pyspy.render(p, per) if "samples" in p else f"profile: {p.get('error')}")
    print(f"\n{result['wall_s']:g} s in all; JSON: {os.path.relpath(path)}")
    return 0
