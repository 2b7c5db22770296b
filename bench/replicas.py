"""Three replicas behind nginx against one gateway, in the same run (issue 19).

    python -m bench.replicas [--quick]      (scripts/bench-replicas)

What runs, each in a process of its own: the fake upstream (`bench.upstream`, the tiny echo), a
redis-server, one gateway on its own (its own SQLite store, the default), three replicas with
`--store redis://…` behind nginx serving deploy/nginx/replicas.conf (TLS, as deployed; only its
ports and paths changed), and for the throughput phase one gateway with `--opencode-workers 3`.

1. Latency at concurrency 1, every kind of request once per round, in an order shuffled anew
   each round: chat completions and Responses (stored, and `store: false`) on the single
   gateway, on replica 1 directly and through nginx pinned to replica 1 (by a conversation key
   that nginx hashes to it, so both go through the same OpenCode process);
   `GET /v1/responses/{id}` on the single gateway (SQLite) and replica 1 (Redis);
   `GET /v1/models` on replica 1 directly and through nginx. The medians of paired differences
   within a process say what nginx adds (through nginx - direct) and what writing to each store
   costs (stored - `store: false`); single and replicas are different OpenCode processes, which
   differ by several ms per turn on their own, so their difference is only the end-to-end view.
2. Throughput at concurrency 20, closed loops in alternating slices: the single gateway, the
   three replicas through nginx (spread: no conversation key), the gateway with 3 OpenCode
   workers; requests/s, p50, and the CPU time per request of all the arm's processes
   (gateways, OpenCode, nginx, Redis).
3. Memory: RSS of every process at the end.

Prints a table and writes the figures to bench/results/replicas-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The gateways this bench starts run this checkout's code, whatever the environment installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
)

from bench.load import (  # noqa: E402
    EXPECTED,
    MODEL,
    PROMPT,
    PROVIDER,
    Outcome,
    _error,
    _status,
    closed_loop,
    with_deadline,
)
from bench.procs import (  # noqa: E402
    Gateway,
    Upstream,
    environment,
    free_port,
    write_opencode_config,
)
from bench.report import summary, write_result  # noqa: E402

RESULTS = ROOT / "bench" / "results"
STATE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "opencode-openai-bench"
Request = Callable[[], Awaitable[Outcome]]


class Target:
    """Requests to one base URL (a gateway, or nginx), each checked for the echo."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], name: str
    ) -> None:
        self.client, self.url, self.headers, self.name = client, url, headers, name
        self.model = f"{PROVIDER}/{MODEL}"
        self.stored: list[str] = []

    async def chat(self) -> Outcome:
        t0 = time.perf_counter()
        body = {"model": self.model, "messages": [{"role": "user", "content": PROMPT}]}
        try:
            r = await self.client.post(
                f"{self.url}/v1/chat/completions", headers=self.headers, json=body
            )
            latency = time.perf_counter() - t0
            if r.status_code != 200:
                return _status(t0, r)
            text = r.json()["choices"][0]["message"]["content"]
            return Outcome("ok", latency) if text == EXPECTED else _error(t0, repr(text))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return _error(t0, repr(exc))

    async def responses(self, store: bool = True) -> Outcome:
        """A response, stored (one write to the store) or not."""
        t0 = time.perf_counter()
        body = {"model": self.model, "input": PROMPT, "store": store}
        try:
            r = await self.client.post(f"{self.url}/v1/responses", headers=self.headers, json=body)
            latency = time.perf_counter() - t0
            if r.status_code != 200:
                return _status(t0, r)
            answer = r.json()
            text = answer["output"][0]["content"][0]["text"]
            if text != EXPECTED:
                return _error(t0, repr(text))
            if store:
                self.stored.append(answer["id"])
            return Outcome("ok", latency)
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            return _error(t0, repr(exc))

    async def unstored(self) -> Outcome:
        return await self.responses(store=False)

    async def retrieve(self) -> Outcome:
        """`GET /v1/responses/{id}` of one this target stored: a read of the store, no turn."""
        t0 = time.perf_counter()
        try:
            r = await self.client.get(
                f"{self.url}/v1/responses/{self.stored[-1]}", headers=self.headers
            )
            if r.status_code != 200:
                return _status(t0, r)
            return Outcome("ok", time.perf_counter() - t0)
        except (httpx.HTTPError, IndexError) as exc:
            return _error(t0, repr(exc))

    async def models(self) -> Outcome:
        """A round trip that does not reach OpenCode nor the store."""
        t0 = time.perf_counter()
        try:
            r = await self.client.get(f"{self.url}/v1/models", headers=self.headers)
            if r.status_code != 200:
                return _status(t0, r)
            return Outcome("ok", time.perf_counter() - t0)
        except httpx.HTTPError as exc:
            return _error(t0, repr(exc))

    async def mixed(self, counter: list[int]) -> Outcome:
        """Chat and a stored response in turn (the throughput phase)."""
        counter[0] += 1
        return await (self.chat() if counter[0] % 2 else self.responses())


async def shuffled_rounds(
    requests: dict[str, Request], rounds: int, deadline_s: float, max_seconds: float
) -> dict[str, list[Outcome]]:
    """Concurrency 1: each round sends one request of every kind, in an order of its own.

    Not `bench.load.interleaved`'s rotation: that keeps the cyclic order, so a kind always
    follows the same other kind, and a request right after one to the same OpenCode process
    is measurably faster (seen: 5 ms) than one after a request to another process.
    """
    order = random.Random(19)
    names = list(requests)
    results: dict[str, list[Outcome]] = {name: [] for name in names}
    stop_at = time.monotonic() + max_seconds
    for _ in range(rounds):
        if time.monotonic() > stop_at:
            break
        order.shuffle(names)
        for name in names:
            results[name].append(await with_deadline(requests[name], deadline_s))
    return results


def paired_ms(a: list[Outcome], b: list[Outcome]) -> float:
    """The median of a - b over the rounds where both succeeded, in ms."""
    diffs = [1000 * (x.latency - y.latency) for x, y in zip(a, b, strict=False)
             if x.kind == y.kind == "ok"]  # fmt: skip
    return round(statistics.median(diffs), 2) if diffs else float("nan")


class Redis:
    """redis-server on a free loopback port, no persistence (as tests/support/redis_server)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise SystemExit("redis-server is not installed (scripts/install installs it)")
        self.proc = await asyncio.create_subprocess_exec(
            binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(self.tmp), "--logfile", str(self.tmp / "redis.log"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                pong = await reader.read(16)
                writer.close()
                if pong.startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


def nginx_pids(master: int) -> list[int]:
    with contextlib.suppress(psutil.Error):
        return [master, *(c.pid for c in psutil.Process(master).children())]
    return [master]


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting for I/O)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return round(total / 2**20, 1)


def family(pid: int) -> list[int]:
    """A gateway and its OpenCode processes."""
    with contextlib.suppress(psutil.Error):
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    return [pid]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.nginx import Nginx, self_signed_certificate
    from tests.support.replicas import replicas_site

    if not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        raise SystemExit("nginx is not installed (scripts/install installs it)")
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "load_average_before": os.getloadavg(),
    }
    key = "sk-bench-" + secrets.token_urlsafe(16)
    headers = {"Authorization": f"Bearer {key}"}
    gateways: list[Gateway] = []
    upstream = Upstream()
    nginx: Nginx | None = None
    with tempfile.TemporaryDirectory(prefix="opencode-openai-bench-replicas-") as tmp_name:
        tmp = Path(tmp_name)
        redis = Redis(tmp)
        cert, cert_key = self_signed_certificate(tmp)
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(120.0, connect=10.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
            verify=str(cert),
        )
        try:
            await upstream.start()
            await redis.start()
            config = write_opencode_config(tmp / "opencode-extra.json", upstream.base_url)
            common = ["--timeout", "120000", "--recycle-rss-mb", "0", "--log-level", "warning"]

            def gateway(name: str, extra: list[str]) -> Gateway:
                (tmp / name).mkdir()
                started = Gateway(tmp / name, config, STATE / f"replicas-{name}", common + extra)
                started.key = key
                gateways.append(started)
                return started

            single = gateway("single", [])
            replicas = [gateway(f"replica-{n}", ["--store", redis.url]) for n in (1, 2, 3)]
            workers = gateway("workers", ["--opencode-workers", "3"]) if args.workers else None
            print(f"starting {len(gateways)} gateways", flush=True)
            for started in gateways:  # one at a time: each start is CPU-bound
                await started.start(client, 300)
            port = free_port()
            site = replicas_site(
                [f"127.0.0.1:{r.port}" for r in replicas],
                port=port,
                cert=cert,
                key=cert_key,
                access_log=tmp / "replicas.access.log",
            )
            (tmp / "nginx").mkdir()
            nginx = Nginx(site, tmp / "nginx", port=port, cert=cert).start()
            assert nginx.process is not None

            direct = Target(client, single.url, headers, "single")
            first = Target(client, replicas[0].url, headers, "replica 1")
            pin = await pinning_key(client, nginx.url, headers, replicas[0].port, tmp)
            through = Target(client, nginx.url, {**headers, "session-id": pin}, "nginx")
            spread = Target(client, nginx.url, headers, "nginx, spread")
            pooled = Target(client, workers.url, headers, "workers") if workers else None

            print("warming up", flush=True)
            for target in (direct, first, through, spread, *([pooled] if pooled else [])):
                for _ in range(10):
                    for request in (target.chat, target.responses):
                        outcome = await request()
                        if outcome.kind != "ok":
                            raise RuntimeError(f"{target.name}: {outcome.detail}")

            print(f"latency at concurrency 1: {args.rounds} rounds", flush=True)
            c1 = await shuffled_rounds(
                {
                    "single chat": direct.chat,
                    "replica chat": first.chat,
                    "nginx chat": through.chat,
                    "single responses": direct.responses,
                    "single unstored": direct.unstored,
                    "replica responses": first.responses,
                    "replica unstored": first.unstored,
                    "nginx responses": through.responses,
                    "single retrieve": direct.retrieve,
                    "replica retrieve": first.retrieve,
                    "replica models": first.models,
                    "nginx models": through.models,
                },
                args.rounds,
                60,
                900,
            )
            result["c1"] = {name: summary(outcomes) for name, outcomes in c1.items()}
            result["c1_paired_ms"] = {
                "nginx_chat": paired_ms(c1["nginx chat"], c1["replica chat"]),
                "nginx_responses": paired_ms(c1["nginx responses"], c1["replica responses"]),
                "nginx_models": paired_ms(c1["nginx models"], c1["replica models"]),
                "store_write_redis": paired_ms(c1["replica responses"], c1["replica unstored"]),
                "store_write_sqlite": paired_ms(c1["single responses"], c1["single unstored"]),
                "store_read_redis_minus_sqlite": paired_ms(
                    c1["replica retrieve"], c1["single retrieve"]
                ),
                "total_chat": paired_ms(c1["nginx chat"], c1["single chat"]),
                "total_responses": paired_ms(c1["nginx responses"], c1["single responses"]),
            }

            print(f"throughput at concurrency 20: {args.slices} slices each", flush=True)
            nginx_side = nginx_pids(nginx.process.pid)
            redis_pid = [redis.proc.pid] if redis.proc else []
            # Each arm's target, and the processes whose CPU it costs.
            arms: dict[str, tuple[Target, Callable[[], list[int]]]] = {
                "single": (direct, lambda: family(single.pid)),
                "replicas": (
                    spread,
                    lambda: [p for r in replicas for p in family(r.pid)] + nginx_side + redis_pid,
                ),
            }
            if workers is not None and pooled is not None:
                arms["workers"] = (pooled, lambda: family(workers.pid))
            rates: dict[str, list[float]] = {name: [] for name in arms}
            cpu: dict[str, list[float]] = {name: [] for name in arms}
            outcomes_of: dict[str, list[Outcome]] = {name: [] for name in arms}
            others: list[float] = []  # % of a core the rest of the machine used

            def ours() -> list[int]:
                return [
                    os.getpid(), upstream.pid, *nginx_side, *redis_pid,
                    *(p for g in gateways for p in family(g.pid)),
                ]  # fmt: skip

            for _ in range(args.slices):
                for name, (target, processes) in arms.items():
                    counter, pids, everyone = [0], processes(), ours()
                    before, mine, busy = cpu_of(pids), cpu_of(everyone), machine_busy()
                    request = functools.partial(target.mixed, counter)
                    outcomes, wall = await closed_loop(request, 20, args.per_slice, 60, 300)
                    ok = sum(1 for o in outcomes if o.kind == "ok")
                    rates[name].append(ok / wall)
                    cpu[name].append(1000 * (cpu_of(pids) - before) / max(1, ok))
                    rest = (machine_busy() - busy) - (cpu_of(everyone) - mine)
                    others.append(100 * max(0.0, rest) / wall)
                    outcomes_of[name] += outcomes
            result["c20"] = {
                name: {
                    "requests_per_s": round(statistics.median(rates[name]), 1),
                    "cpu_ms_per_request": round(statistics.median(cpu[name]), 1),
                    **summary(outcomes_of[name]),
                }
                for name in arms
            }
            result["c20_other_processes_percent"] = round(statistics.median(others), 1)

            result["rss_mb"] = {
                "single (gateway + OpenCode)": rss_mb(family(single.pid)),
                "replica gateway (each)": rss_mb([replicas[0].pid]),
                "replica OpenCode (each)": rss_mb(family(replicas[0].pid)[1:]),
                "nginx": rss_mb(nginx_side),
                "redis": rss_mb(redis_pid),
            }
            if workers is not None:
                result["rss_mb"]["workers (gateway + 3 OpenCode)"] = rss_mb(family(workers.pid))
        finally:
            if nginx is not None:
                nginx.stop()
            for started in gateways:
                await started.stop()
            await redis.stop()
            await upstream.stop()
            await client.aclose()
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["load_average_after"] = os.getloadavg()
    return result


async def pinning_key(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], port: int, tmp: Path
) -> str:
    """A conversation key that nginx hashes to the replica on `port` (read from its log)."""
    log = tmp / "replicas.access.log"
    for n in range(200):
        key = f"bench-{n}"
        r = await client.get(f"{url}/v1/models", headers={**headers, "session-id": key})
        rid = r.headers["x-request-id"]
        for _ in range(100):
            line = next((x for x in log.read_text().splitlines() if f"rid={rid} " in x), None)
            if line is not None:
                break
            await asyncio.sleep(0.01)
        if line is not None and f" upstream=127.0.0.1:{port} " in line:
            return key
    raise RuntimeError("no conversation key found for replica 1")


def table(r: dict[str, Any]) -> str:
    c1, paired, c20 = r["c1"], r["c1_paired_ms"], r["c20"]

    def p50(name: str) -> str:
        return f"{c1[name]['latency_ms']['p50']:.1f}"

    lines = [
        "latency at c=1, p50 (ms)          single   replica 1   nginx -> replica 1",
        f"  chat completion               {p50('single chat'):>8} {p50('replica chat'):>11}"
        f" {p50('nginx chat'):>20}",
        f"  response (stored)             {p50('single responses'):>8}"
        f" {p50('replica responses'):>11} {p50('nginx responses'):>20}",
        f"  response (store: false)       {p50('single unstored'):>8}"
        f" {p50('replica unstored'):>11}",
        f"  GET /v1/responses/{{id}}        {p50('single retrieve'):>8}"
        f" {p50('replica retrieve'):>11}",
        f"  GET /v1/models                {'':>8} {p50('replica models'):>11}"
        f" {p50('nginx models'):>20}",
        "paired medians (ms)",
        f"  nginx: chat {paired['nginx_chat']}, response {paired['nginx_responses']}, "
        f"models {paired['nginx_models']}",
        f"  writing a response: Redis {paired['store_write_redis']}, "
        f"SQLite {paired['store_write_sqlite']} (stored - store: false, same process)",
        f"  reading one, Redis - SQLite: {paired['store_read_redis_minus_sqlite']}",
        f"  all of it (nginx -> replica 1 - single): chat {paired['total_chat']}, "
        f"response {paired['total_responses']}",
        "throughput at c=20 (chat and stored responses in turn)",
    ]
    for name, arm in c20.items():
        lines.append(
            f"  {name:10} {arm['requests_per_s']:>6} req/s  p50 {arm['latency_ms']['p50']:>7} ms"
            f"  CPU {arm['cpu_ms_per_request']:>5} ms/request  errors {arm['errors'] + arm['hung']}"
        )
    lines.append(
        f"  other processes on the machine meanwhile: {r['c20_other_processes_percent']}%"
        " of a core (far above 0: the figures are inflated by contention)"
    )
    lines.append("RSS (MB): " + ", ".join(f"{k} {v}" for k, v in r["rss_mb"].items()))
    errors = sum(v["errors"] + v["hung"] for v in c1.values())
    lines.append(f"errors at c=1: {errors}")
    before, after = r["load_average_before"][0], r["load_average_after"][0]
    lines.append(f"machine load average (1 min): {before:.1f} before, {after:.1f} after")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (a few minutes)")
    parser.add_argument(
        "--no-workers",
        dest="workers",
        action="store_false",
        help="leave out the gateway with 3 OpenCode workers",
    )
    args = parser.parse_args(argv)
    args.rounds, args.slices, args.per_slice = (100, 2, 100) if args.quick else (300, 4, 300)
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:  # pragma: no cover
        result = asyncio.run(run(args))
    result["plan"] = vars(args)
    text = table(result)
    result["table"] = text
    print(text)
    print(f"wrote {write_result(RESULTS, 'replicas', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
