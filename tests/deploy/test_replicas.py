"""Three gateway replicas behind nginx, for real on loopback (deploy/nginx/replicas.conf).

Three gateway processes, each with its embedded OpenCode and its own state dir, sharing one
redis-server as their store; nginx serving deploy/nginx/replicas.conf with only its ports,
paths and certificate changed; the scripted fake upstream as the model. Which replica served a
request is read from nginx's access log (the site's `upstream=` field, found by the request id
that every answer carries in `x-request-id`), and checked against the replicas' own access
lines: nothing in the product is there for these tests.

- affinity: a conversation header (Codex's `Session-Id`, Claude Code's
  `X-Claude-Code-Session-Id`) keeps every request of it on one replica; without one, requests
  spread;
- a Responses chain whose turns land on three replicas continues exactly (the shared store);
- SIGKILL of a replica with streams in flight ends only those (a cut stream, nginx's JSON 502
  for one waiting for its answer); every later request succeeds (nginx tries the next replica);
- deploy/nginx/rolling-restart restarts each replica in turn under a steady load of streamed
  and whole chat and Responses requests: every one gets its exact answer.

The replicas, nginx and Redis start once for the module (about half a minute on 2 cores).
Where nginx or redis-server is missing the tests skip, and fail in CI. Run them alone with
`scripts/test tests/deploy/test_replicas.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.transport import ValidatingTransport
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, free_port, fresh_state_dir, opencode_config
from tests.support.nginx import Nginx, need, self_signed_certificate
from tests.support.redis_server import RedisServer, redis_server_binary
from tests.support.replicas import Replica, ReplicaSet, replicas_site

pytestmark = pytest.mark.opencode

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fake/fake-model"
ROLLING_RESTART = ROOT / "deploy" / "nginx" / "rolling-restart"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: Short, so that a stream the rolling restart did not wait for would be cut.
SHUTDOWN_GRACE_S = 2
#: The fields of the site's log_format that say where a request went.
LOG_LINE = re.compile(r" rid=(?P<rid>\S+) upstream=(?P<upstream>.*?) upstream_status=")


@dataclass
class Cluster:
    replicas: ReplicaSet
    nginx: Nginx
    access_log: Path
    _keys: dict[str, str] = field(default_factory=dict)

    def client(self, **kwargs: Any) -> httpx.Client:
        transport = ValidatingTransport(inner=httpx.HTTPTransport(verify=str(self.nginx.cert)))
        return httpx.Client(
            base_url=self.nginx.url, headers=AUTH, timeout=30, transport=transport, **kwargs
        )

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.nginx.url,
            headers=AUTH,
            verify=str(self.nginx.cert),
            timeout=60,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    def tried(self, request_id: str, timeout: float = 10.0) -> list[str]:
        """The replicas nginx sent the request to, in order (the last one answered)."""

        def find() -> list[str] | None:
            for line in self.access_log.read_text().splitlines():
                found = LOG_LINE.search(line)
                if found and found["rid"] == request_id:
                    return re.split(r", | : ", found["upstream"])
            return None

        return fu.FakeUpstream.wait_for(find, timeout)

    def served_by(self, response: httpx.Response) -> Replica:
        """The replica that answered, by nginx's log; its own access log must agree."""
        request_id = response.headers["x-request-id"]
        replica = self.replicas.by_address(self.tried(request_id)[-1])
        fu.FakeUpstream.wait_for(lambda: replica.served(request_id), timeout=10)
        others = [r.index for r in self.replicas if r is not replica and r.served(request_id)]
        assert others == [], f"{request_id} is in the logs of replicas {others} too"
        return replica

    def wait_routed(self, replica: Replica, timeout: float = 30.0) -> None:
        """Until nginx sends the replica's conversations to it again: after a failure nginx
        leaves it out for fail_timeout, then lets one request try it (passive health)."""
        key = self.keys()[replica.address]
        deadline = time.monotonic() + timeout
        with self.client() as http:
            while (
                self.served_by(http.get("/v1/models", headers={"session-id": key})) is not replica
            ):
                assert time.monotonic() < deadline, f"nginx did not take {replica.address} back"
                time.sleep(0.2)

    def keys(self) -> dict[str, str]:
        """A conversation key per replica (address -> key) that nginx hashes to it."""
        if len(self._keys) < len(self.replicas):
            with self.client() as http:
                for n in itertools.count():
                    assert n < 200, f"no key found for some replica: {self._keys}"
                    key = f"conversation-{n}"
                    answer = http.get("/v1/models", headers={"session-id": key})
                    assert answer.status_code == 200, answer.text
                    self._keys.setdefault(self.served_by(answer).address, key)
                    if len(self._keys) == len(self.replicas):
                        break
        return self._keys


@pytest.fixture(scope="module")
def cluster(
    fake_upstream: fu.FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    need("nginx", "/usr/sbin/nginx")
    redis_server_binary()
    workdir = tmp_path_factory.mktemp("replicas")
    config = workdir / "opencode-extra.json"
    config.write_text(json.dumps(opencode_config(fake_upstream.base_url)))
    redis = RedisServer().start()
    replicas = ReplicaSet(
        workdir,
        3,
        state_dir=fresh_state_dir,
        opencode_config=config,
        api_key=API_KEY,
        extra_args=[
            *("--timeout", "30000", "--shutdown-grace", str(SHUTDOWN_GRACE_S)),
            *("--recycle-rss-mb", "0", "--store", redis.url),
        ],
    )
    try:
        replicas.start()
        cert, key = self_signed_certificate(workdir)
        port, log = free_port(), workdir / "replicas.access.log"
        addresses = [replica.address for replica in replicas]
        site = replicas_site(addresses, port=port, cert=cert, key=key, access_log=log)
        nginx = Nginx(site, workdir, port=port, cert=cert).start()
        try:
            yield Cluster(replicas, nginx, log)
        finally:
            nginx.stop()
    finally:
        replicas.stop()
        redis.stop()


def chat_text(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    return str(answer.json()["choices"][0]["message"]["content"])


def response_text(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    return str(answer.json()["output"][0]["content"][0]["text"])


def test_a_conversation_header_keeps_its_requests_on_one_replica(
    cluster: Cluster, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.echo())
    keys = cluster.keys()
    prompts = (f"{marker} {n}" for n in itertools.count())
    with cluster.client() as http:
        for address, key in keys.items():
            landed = []
            # Codex's header, on each API.
            codex = {"session-id": key}
            prompt = next(prompts)
            chat = http.post(
                "/v1/chat/completions",
                headers=codex,
                json={"model": MODEL, "messages": [{"role": "user", "content": prompt}]},
            )
            assert chat_text(chat) == f"echo: {prompt}"
            prompt = next(prompts)
            response = http.post(
                "/v1/responses",
                headers=codex,
                json={"model": MODEL, "input": prompt, "store": False},
            )
            assert response_text(response) == f"echo: {prompt}"
            landed += [chat, response, http.get("/v1/models", headers=codex)]
            # Claude Code's header, the same key: the same replica.
            claude = {"x-claude-code-session-id": key}
            prompt = next(prompts)
            message = http.post(
                "/v1/messages",
                headers=claude,
                json={
                    "model": MODEL,
                    "max_tokens": 100,
                    "messages": [{"role": "user", "content": prompt}],
                },
            )
            assert message.status_code == 200, message.text
            assert message.json()["content"][0]["text"] == f"echo: {prompt}"
            landed += [message, http.get("/v1/models", headers=claude)]
            assert [cluster.served_by(answer).address for answer in landed] == [address] * 5
        # Without a conversation header, requests spread (all 12 on one replica by chance:
        # 3 in 3^12).
        spread = {cluster.served_by(http.get("/v1/models")).address for _ in range(12)}
        assert len(spread) >= 2, spread


def sse_events(answer: httpx.Response) -> list[Any]:
    """The `data:` payloads of a whole stream, `[DONE]` as the string."""
    assert answer.status_code == 200, answer.text
    lines = [line[6:] for line in answer.text.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_a_responses_chain_whose_turns_land_on_three_replicas_continues_exactly(
    cluster: Cluster, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker, fu.text("first answer"), fu.text(["second ", "answer"]), fu.text("third answer")
    )
    first_key, second_key, third_key = cluster.keys().values()
    with cluster.client() as http:
        first = http.post(
            "/v1/responses",
            headers={"session-id": first_key},
            json={"model": MODEL, "input": marker},
        )
        assert response_text(first) == "first answer"
        second = http.post(
            "/v1/responses",
            headers={"session-id": second_key},
            json={
                "model": MODEL,
                "input": "and then?",
                "previous_response_id": first.json()["id"],
                "stream": True,
            },
        )
        events = sse_events(second)
        [completed] = [e["response"] for e in events if e["type"] == "response.completed"]
        assert completed["output"][0]["content"][0]["text"] == "second answer"
        third = http.post(
            "/v1/responses",
            headers={"session-id": third_key},
            json={"model": MODEL, "input": "and last?", "previous_response_id": completed["id"]},
        )
        assert response_text(third) == "third answer"
        assert third.json()["previous_response_id"] == completed["id"]
        served = [cluster.served_by(answer) for answer in (first, second, third)]
    assert len({replica.index for replica in served}) == 3
    # The third turn's replica rebuilt the whole conversation from what the other two stored.
    *_, last = fake_upstream.chat_requests(marker)
    assert last.body["messages"] == [
        {"role": "user", "content": marker},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "and then?"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "and last?"},
    ]
    # Every replica, asked directly, has every turn.
    for replica in cluster.replicas:
        for turn_id in (first.json()["id"], completed["id"], third.json()["id"]):
            stored = httpx.get(f"{replica.url}/v1/responses/{turn_id}", headers=AUTH, timeout=10)
            assert stored.status_code == 200, (replica.index, stored.text)


@dataclass
class Stream:
    """One streamed chat request in flight: its text so far, how it ended."""

    response: httpx.Response | None = None
    text: str = ""
    done: bool = False
    error: BaseException | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)


async def stream_chat(
    http: httpx.AsyncClient, prompt: str, headers: dict[str, str], into: Stream
) -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    try:
        async with http.stream(
            "POST", "/v1/chat/completions", headers=headers, json=body
        ) as answer:
            into.response = answer
            async for line in answer.aiter_lines():
                if line == "data: [DONE]":
                    into.done = True
                elif line.startswith("data: "):
                    for choice in json.loads(line[6:]).get("choices") or ():
                        into.text += (choice.get("delta") or {}).get("content") or ""
                    if into.text:
                        into.started.set()
    except httpx.HTTPError as exc:
        into.error = exc
    finally:
        into.started.set()


async def test_a_killed_replica_ends_only_its_own_requests_and_every_later_one_succeeds(
    cluster: Cluster, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    pieces = [f"piece{n} " for n in range(12)]
    fake_upstream.script(f"{marker} stream", fu.text(pieces, chunk_delay_s=0.4))
    fake_upstream.script(f"{marker} held", fu.text("never sent", delay_s=60))
    fake_upstream.script(f"{marker} after", fu.echo())
    keys = cluster.keys()
    victim, *others = cluster.replicas
    doomed, spared = [Stream(), Stream()], [Stream() for _ in others]
    try:
        async with cluster.async_client() as http:
            tasks = [
                asyncio.create_task(
                    stream_chat(http, f"{marker} stream {n}", {"session-id": key}, stream)
                )
                for n, (key, stream) in enumerate(
                    [(keys[victim.address], s) for s in doomed]
                    + [(keys[r.address], s) for r, s in zip(others, spared, strict=True)]
                )
            ]
            held = asyncio.create_task(
                http.post(
                    "/v1/chat/completions",
                    headers={"session-id": keys[victim.address]},
                    json={
                        "model": MODEL,
                        "messages": [{"role": "user", "content": f"{marker} held"}],
                    },
                )
            )
            for stream in doomed + spared:
                await asyncio.wait_for(stream.started.wait(), 30)
            await asyncio.to_thread(
                fake_upstream.wait_for, lambda: fake_upstream.chat_requests(f"{marker} held"), 30
            )
            assert not any(s.error or s.done for s in doomed + spared)
            victim.kill()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            failed = await asyncio.wait_for(held, 30)

            # The victim's streams: cut, never a [DONE]; what came is the answer's beginning.
            full = "".join(pieces)
            for stream in doomed:
                assert isinstance(stream.error, httpx.RemoteProtocolError), stream
                assert not stream.done and stream.text and full.startswith(stream.text)
                assert stream.response is not None
                assert cluster.tried(stream.response.headers["x-request-id"]) == [victim.address]
            # The one waiting for its answer: nginx's own 502, in OpenAI's shape.
            assert failed.status_code == 502, failed.text
            assert failed.headers["content-type"] == "application/json"
            assert failed.json() == {
                "error": {
                    "message": "No gateway replica answered the request (nginx).",
                    "type": "server_error",
                    "param": None,
                    "code": "replica_failed",
                }
            }
            assert cluster.tried(failed.headers["x-request-id"]) == [victim.address]
            # The other replicas' streams are untouched.
            for replica, stream in zip(others, spared, strict=True):
                assert (stream.error, stream.done, stream.text) == (None, True, full)
                assert stream.response is not None
                assert cluster.served_by(stream.response) is replica

            # After the kill every request succeeds, also those whose conversation hashes to
            # the dead replica: until nginx has tried it again (fail_timeout) and gone on to
            # the next one, the connection refused.
            retried = False
            started = time.monotonic()
            for n in itertools.count():
                assert time.monotonic() - started < 30, "nginx never tried the dead replica again"
                prompt = f"{marker} after {n}"
                headers = {"session-id": keys[victim.address]} if n % 3 else {}
                if n % 2:
                    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
                    answer = await http.post("/v1/chat/completions", headers=headers, json=body)
                    assert chat_text(answer) == f"echo: {prompt}"
                else:
                    stream = Stream()
                    await stream_chat(http, prompt, headers, stream)
                    assert (stream.error, stream.done, stream.text) == (
                        None,
                        True,
                        f"echo: {prompt}",
                    )
                    assert stream.response is not None
                    answer = stream.response
                tried = cluster.tried(answer.headers["x-request-id"])
                assert tried[-1] != victim.address
                retried = retried or tried[:1] == [victim.address]
                if retried and n >= 12:
                    break
    finally:
        victim.spawn()
        victim.wait_ready()
        cluster.wait_routed(victim)


@dataclass
class Outcome:
    kind: str
    ok: bool
    detail: str = ""


class Load:
    """A steady mix of requests through nginx (chat and Responses, whole and streamed; half
    the workers with a conversation key of their own), each checked for its exact answer."""

    KINDS = ("chat", "chat-stream", "responses", "responses-stream")

    def __init__(self, http: httpx.AsyncClient, marker: str, concurrency: int) -> None:
        self.http, self.marker, self.concurrency = http, marker, concurrency
        self.outcomes: list[Outcome] = []
        self._numbers = itertools.count()

    async def run(self, stop: asyncio.Event) -> None:
        async def worker(w: int) -> None:
            headers = {"session-id": f"load-worker-{w}"} if w % 2 else {}
            while not stop.is_set():
                n = next(self._numbers)
                kind = self.KINDS[n % len(self.KINDS)]
                self.outcomes.append(await self.one(kind, f"{self.marker} {n}", headers))

        await asyncio.gather(*(worker(w) for w in range(self.concurrency)))

    async def one(self, kind: str, prompt: str, headers: dict[str, str]) -> Outcome:
        expected = f"echo: {prompt}"
        chat = kind.startswith("chat")
        path = "/v1/chat/completions" if chat else "/v1/responses"
        body: dict[str, Any] = (
            {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
            if chat
            else {"model": MODEL, "input": prompt, "store": False}
        )
        try:
            if not kind.endswith("stream"):
                answer = await self.http.post(path, headers=headers, json=body)
                got = chat_text(answer) if chat else response_text(answer)
                return Outcome(kind, got == expected, f"{answer.status_code} {got!r}")
            text, finished = "", False
            async with self.http.stream(
                "POST", path, headers=headers, json={**body, "stream": True}
            ) as answer:
                if answer.status_code != 200:
                    await answer.aread()
                    return Outcome(kind, False, f"{answer.status_code} {answer.text[:300]}")
                async for line in answer.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        finished = finished or line == "data: [DONE]"
                        continue
                    event = json.loads(line[6:])
                    if chat:
                        for choice in event.get("choices") or ():
                            text += (choice.get("delta") or {}).get("content") or ""
                    elif event["type"] == "response.output_text.delta":
                        text += event["delta"]
                    elif event["type"] == "response.completed":
                        finished = True
            return Outcome(kind, finished and text == expected, f"finished={finished} {text!r}")
        except (httpx.HTTPError, AssertionError, ValueError, KeyError) as exc:
            return Outcome(kind, False, repr(exc))


async def test_a_rolling_restart_under_load_loses_no_request(
    cluster: Cluster, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """deploy/nginx/rolling-restart, one replica at a time, while a load runs; on each replica
    a stream longer than --shutdown-grace is running when it is taken out."""
    pieces = [f"piece{n} " for n in range(10)]
    fake_upstream.script(f"{marker} load", fu.Echo(delay_s=0.1))
    fake_upstream.script(f"{marker} long", fu.text(pieces, chunk_delay_s=0.4))
    keys = cluster.keys()
    replicas, nginx = cluster.replicas, cluster.nginx
    pids = [replica.pid for replica in replicas]
    restart = shlex.join(
        [sys.executable, "-m", "tests.support.replicas", "restart", str(replicas.spec)]
    )
    command = [
        str(ROLLING_RESTART), "--site", str(nginx.site), "--nginx", shlex.join(nginx.command),
        "--pid-file", str(nginx.pid_file), "--restart", f'{restart} "$REPLICA"',
        "--ready-timeout", "120",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stop = asyncio.Event()
    async with cluster.async_client() as http:
        load = Load(http, f"{marker} load", concurrency=6)
        running = asyncio.create_task(load.run(stop))
        try:
            for replica in replicas:
                long = Stream()
                headers = {"session-id": keys[replica.address]}
                streaming = asyncio.create_task(
                    stream_chat(http, f"{marker} long {replica.index}", headers, long)
                )
                await asyncio.wait_for(long.started.wait(), 30)
                # A session of its own: if the test gives up on it, the script and the restart
                # it may be running go together, before the module's replicas are stopped.
                proc = await asyncio.create_subprocess_exec(
                    *command, replica.address, cwd=ROOT, env=env, start_new_session=True,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                try:
                    out, _ = await asyncio.wait_for(proc.communicate(), 240)
                finally:
                    if proc.returncode is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                        await proc.wait()
                assert proc.returncode == 0, out.decode()
                assert f"{replica.address}: back in nginx's upstream" in out.decode()
                await asyncio.wait_for(streaming, 30)
                # Taken out while it ran, the replica was restarted only once it had ended.
                assert (long.error, long.done, long.text) == (None, True, "".join(pieces))
                assert long.response is not None
                assert cluster.tried(long.response.headers["x-request-id"]) == [replica.address]
        finally:
            stop.set()
            await running
        # Each replica is a new process, and back in nginx's upstream: its conversations
        # reach it again.
        for replica, before in zip(replicas, pids, strict=True):
            assert replica.alive() and replica.pid != before
            answer = await http.get("/v1/models", headers={"session-id": keys[replica.address]})
            assert answer.status_code == 200
            assert cluster.served_by(answer) is replica
    failures = [o for o in load.outcomes if not o.ok]
    assert failures == [], f"{len(failures)} of {len(load.outcomes)} failed: {failures[:10]}"
    assert {o.kind for o in load.outcomes} == set(Load.KINDS)
    assert len(load.outcomes) >= 60, len(load.outcomes)


def test_with_no_replica_up_nginx_answers_in_each_routes_protocol(tmp_path: Path) -> None:
    """nginx's own 502 (every replica refused the connection) is JSON in the route's protocol:
    OpenAI's `{"error": …}` on its routes, Anthropic's `{"type": "error", …}` on /v1/messages."""
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    nobody = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    site = replicas_site(nobody, port=port, cert=cert, key=key, access_log=tmp_path / "a.log")
    nginx = Nginx(site, tmp_path, port=port, cert=cert).start()
    try:
        with httpx.Client(base_url=nginx.url, verify=str(cert), timeout=10) as http:
            chat = http.post("/v1/chat/completions", json={"model": "m", "messages": []})
            messages = http.post("/v1/messages", json={"model": "m", "messages": []})
    finally:
        nginx.stop()
    assert chat.status_code == 502 and chat.headers["content-type"] == "application/json"
    assert chat.json()["error"]["code"] == "replica_failed"
    assert messages.status_code == 502
    assert messages.json() == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "No gateway replica answered the request (nginx).",
        },
    }
