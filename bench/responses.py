"""The Responses route against the chat route, in the same run (issue 16).

    python -m bench.responses [--quick] [--chunks N]      (scripts/bench-responses)

One gateway (its embedded OpenCode, the fake upstream) serves both routes; each phase
alternates them, so a drift of the machine hits both:

- overhead at concurrency 1: rounds of one chat completion and one response (both JSON, the
  same tiny echo), interleaved; p50 of each, the median of the paired differences (aim:
  responses within 1 ms of chat), and the gateway process's CPU time per request of each
  (what the route itself costs: less noisy than latency on a busy machine);
- throughput at concurrency 10: closed loops of each, in alternating slices (aim: the same);
- CPU per streamed chunk: streams of a long answer (`--chunks` pieces from the fake upstream)
  on each route, with the gateway process's CPU time over each route's streams divided by the
  text deltas its clients received (aim: at most 20 us for Responses; chat was about 40).

Prints a table and writes the figures to bench/results/responses-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import (  # noqa: E402
    EXPECTED,
    MODEL,
    PROMPT,
    PROVIDER,
    CpuWindow,
    Outcome,
    _error,
    _status,
    closed_loop,
    interleaved,
    make_client,
)
from bench.procs import Gateway, Meter, Upstream, write_opencode_config  # noqa: E402
from bench.report import summary, write_result  # noqa: E402
from bench.upstream import LONG_MARKER  # noqa: E402

RESULTS = ROOT / "bench" / "results"
Request = Callable[[], Awaitable[Outcome]]


class Routes:
    """The two routes, JSON and streamed, as the bench's requests."""

    def __init__(self, client: httpx.AsyncClient, gateway: Gateway) -> None:
        self.client, self.headers = client, gateway.headers
        self.chat_url = f"{gateway.url}/v1/chat/completions"
        self.responses_url = f"{gateway.url}/v1/responses"
        self.model = f"{PROVIDER}/{MODEL}"
        self.chunks: dict[str, int] = {"chat": 0, "responses": 0}

    async def chat(self) -> Outcome:
        t0 = time.perf_counter()
        body = {"model": self.model, "messages": [{"role": "user", "content": PROMPT}]}
        try:
            response = await self.client.post(self.chat_url, headers=self.headers, json=body)
            latency = time.perf_counter() - t0
            if response.status_code != 200:
                return _status(t0, response)
            text = response.json()["choices"][0]["message"]["content"]
            return Outcome("ok", latency) if text == EXPECTED else _error(t0, repr(text))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return _error(t0, repr(exc))

    async def responses(self) -> Outcome:
        t0 = time.perf_counter()
        body = {"model": self.model, "input": PROMPT, "store": False}
        try:
            response = await self.client.post(self.responses_url, headers=self.headers, json=body)
            latency = time.perf_counter() - t0
            if response.status_code != 200:
                return _status(t0, response)
            text = response.json()["output"][0]["content"][0]["text"]
            return Outcome("ok", latency) if text == EXPECTED else _error(t0, repr(text))
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            return _error(t0, repr(exc))

    async def long_stream(self, route: str) -> Outcome:
        """A streamed long answer; counts the text deltas the client received."""
        t0 = time.perf_counter()
        prompt = f"{LONG_MARKER} please"
        if route == "chat":
            url = self.chat_url
            body: dict[str, Any] = {
                "model": self.model,
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
            }
        else:
            url = self.responses_url
            body = {"model": self.model, "stream": True, "input": prompt, "store": False}
        deltas = 0
        try:
            async with self.client.stream("POST", url, headers=self.headers, json=body) as r:
                if r.status_code != 200:
                    await r.aread()
                    return _status(t0, r)
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    event = json.loads(line[6:])
                    if route == "chat":
                        choices = event.get("choices") or [{}]
                        deltas += bool(choices[0].get("delta", {}).get("content"))
                    else:
                        deltas += event.get("type") == "response.output_text.delta"
        except (httpx.HTTPError, ValueError) as exc:
            return _error(t0, repr(exc))
        self.chunks[route] += deltas
        return Outcome("ok", time.perf_counter() - t0)


def paired_ms(a: list[Outcome], b: list[Outcome]) -> float:
    diffs = [1000 * (x.latency - y.latency) for x, y in zip(a, b, strict=False)
             if x.kind == y.kind == "ok"]  # fmt: skip
    return round(statistics.median(diffs), 3) if diffs else float("nan")


async def run(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds")}
    client = make_client()
    upstream = Upstream(["--long-chunks", str(args.chunks)])
    gateway: Gateway | None = None
    with tempfile.TemporaryDirectory(prefix="opencode-openai-bench-responses-") as tmp:
        try:
            await upstream.start()
            config = write_opencode_config(Path(tmp) / "opencode-extra.json", upstream.base_url)
            gateway = Gateway(Path(tmp), config, state, ["--timeout", "120000"])
            await gateway.start(client, 240)
            routes = Routes(client, gateway)
            meter = Meter("gateway", gateway.pid)
            print("warming up", flush=True)
            await interleaved({"chat": routes.chat, "responses": routes.responses}, 20, 60, 60)
            for route in ("chat", "responses"):
                await routes.long_stream(route)

            print(f"overhead at concurrency 1: {args.rounds} rounds", flush=True)
            spent = {"chat": 0.0, "responses": 0.0}

            def metered(name: str, request: Request) -> Request:
                async def run() -> Outcome:
                    window = CpuWindow([meter])
                    with window:
                        outcome = await request()
                    spent[name] += window.cpu_s["gateway"]
                    return outcome

                return run

            c1 = await interleaved(
                {
                    "chat": metered("chat", routes.chat),
                    "responses": metered("responses", routes.responses),
                },
                args.rounds,
                60,
                600,
            )
            result["c1"] = {name: summary(outcomes) for name, outcomes in c1.items()}
            result["c1"]["paired_responses_minus_chat_ms"] = paired_ms(c1["responses"], c1["chat"])
            result["c1"]["gateway_cpu_ms_per_request"] = {
                name: round(1000 * spent[name] / max(1, len(c1[name])), 3) for name in spent
            }

            print(f"throughput at concurrency 10: {args.slices} slices each", flush=True)
            rates: dict[str, list[float]] = {"chat": [], "responses": []}
            for _ in range(args.slices):
                for name, request in (("chat", routes.chat), ("responses", routes.responses)):
                    outcomes, wall = await closed_loop(request, 10, args.per_slice, 60, 120)
                    ok = sum(1 for o in outcomes if o.kind == "ok")
                    rates[name].append(ok / wall)
            result["c10_requests_per_s"] = {
                name: round(statistics.median(values), 1) for name, values in rates.items()
            }

            print(f"CPU per streamed chunk: {args.streams} streams of {args.chunks} chunks",
                  flush=True)  # fmt: skip
            cpu: dict[str, float] = {"chat": 0.0, "responses": 0.0}
            routes.chunks = {"chat": 0, "responses": 0}
            for _ in range(args.streams):
                for route in ("chat", "responses"):
                    window = CpuWindow([meter])
                    with window:
                        outcome = await routes.long_stream(route)
                    if outcome.kind != "ok":
                        raise RuntimeError(f"{route} stream failed: {outcome.detail}")
                    cpu[route] += window.cpu_s["gateway"]
            result["per_chunk"] = {
                route: {
                    "chunks": routes.chunks[route],
                    "gateway_cpu_s": round(cpu[route], 3),
                    "gateway_cpu_us_per_chunk": round(1e6 * cpu[route] / routes.chunks[route], 1),
                }
                for route in cpu
            }
        finally:
            if gateway is not None:
                await gateway.stop()
            await upstream.stop()
            await client.aclose()
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


def table(r: dict[str, Any]) -> str:
    c1 = r["c1"]
    lines = [
        f"{'metric':44} {'chat':>10} {'responses':>10}",
        f"{'p50 latency at c=1 (ms)':44} {c1['chat']['latency_ms']['p50']:>10} "
        f"{c1['responses']['latency_ms']['p50']:>10}",
        f"{'paired median, responses - chat (ms)':44} {'':>10} "
        f"{c1['paired_responses_minus_chat_ms']:>10}",
        f"{'gateway CPU per request at c=1 (ms)':44} "
        f"{c1['gateway_cpu_ms_per_request']['chat']:>10} "
        f"{c1['gateway_cpu_ms_per_request']['responses']:>10}",
        f"{'requests/s at c=10':44} {r['c10_requests_per_s']['chat']:>10} "
        f"{r['c10_requests_per_s']['responses']:>10}",
        f"{'gateway CPU per streamed chunk (us)':44} "
        f"{r['per_chunk']['chat']['gateway_cpu_us_per_chunk']:>10} "
        f"{r['per_chunk']['responses']['gateway_cpu_us_per_chunk']:>10}",
        f"{'chunks received':44} {r['per_chunk']['chat']['chunks']:>10} "
        f"{r['per_chunk']['responses']['chunks']:>10}",
    ]
    errors = {name: c1[name]["errors"] + c1[name]["hung"] for name in ("chat", "responses")}
    lines.append(f"{'errors at c=1':44} {errors['chat']:>10} {errors['responses']:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m bench.responses", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (about a minute)")
    parser.add_argument("--chunks", type=int, default=2000, help="chunks of the long answer")
    args = parser.parse_args(argv)
    args.rounds, args.slices, args.per_slice, args.streams = (
        (60, 2, 60, 3) if args.quick else (300, 4, 200, 10)
    )
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    # A state dir of its own: one gateway per state dir, and `python -m bench` may be running.
    result = asyncio.run(run(args, cache / "opencode-openai-bench" / "responses-gateway"))
    result["plan"] = vars(args)
    print(table(result))
    print(f"wrote {write_result(RESULTS, 'responses', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
