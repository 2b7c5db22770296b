"""Codex CLI (npm `@openai/codex`), unmodified, against the gateway as a custom provider.

Codex speaks only the Responses API (`wire_api = "responses"`). `codex exec` runs one task
non-interactively, as a user runs it, with a throwaway CODEX_HOME and the provider given by
`-c` overrides (no config file). Its requests go through the recording proxy, so the test
sees what Codex itself sent; the fake upstream sees what OpenCode made of it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients._support import ROOT, RecordingProxy
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY
from tests.support.opencode_turns import OpenCodeTurns

pytestmark = pytest.mark.opencode

CODEX = ROOT / "node_modules" / ".bin" / "codex"
MODEL = "fake/fake-model"


def codex_exec(
    proxy: RecordingProxy, home: Path, workdir: Path, prompt: str
) -> list[dict[str, Any]]:
    """Run `codex exec --json PROMPT` in `workdir`; its JSONL events (it must succeed)."""
    provider = (
        f'{{name="opencode-openai",base_url="{proxy.base_url}",env_key="GATEWAY_API_KEY",'
        'wire_api="responses",request_max_retries=0,stream_max_retries=0}'
    )
    command = [
        str(CODEX), "exec", "--json", "--skip-git-repo-check", "--ignore-user-config",
        "-s", "workspace-write",
        "-c", 'approval_policy="never"',
        "-c", 'model_provider="gw"',
        "-c", f'model="{MODEL}"',
        "-c", f"model_providers.gw={provider}",
        "-c", "analytics.enabled=false",
        "-c", "check_for_update_on_startup=false",
        prompt,
    ]  # fmt: skip
    env = {**os.environ, "CODEX_HOME": str(home), "GATEWAY_API_KEY": API_KEY}
    proc = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, (
        f"codex exec exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return events


def items(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        e["item"]
        for e in events
        if e.get("type") == "item.completed" and e.get("item", {}).get("type") == kind
    ]


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    home, workdir = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    return home, workdir


def test_codex_plain_answer(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, places: tuple[Path, Path], marker: str
) -> None:
    fake_upstream.script(marker, fu.text("Hello from the gateway.", usage=fu.Usage(30, 6)))
    home, workdir = places
    events = codex_exec(proxy, home, workdir, f"Say hello {marker}")
    assert [m["text"] for m in items(events, "agent_message")] == ["Hello from the gateway."]
    [completed] = [e for e in events if e.get("type") == "turn.completed"]
    assert completed["usage"]["input_tokens"] == 30
    assert completed["usage"]["output_tokens"] == 6
    [sent] = proxy.requests(marker, path="/v1/responses")
    assert sent.headers["originator"] == "codex_exec"
    body = sent.body
    assert body["stream"] is True and body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"]
    assert {t["type"] for t in body["tools"]} >= {"function", "namespace", "web_search"}
    [upstream] = fake_upstream.chat_requests(marker)
    names = {t["function"]["name"] for t in upstream.body["tools"]}
    assert "exec_command" in names and "web_search" not in names
    assert any(name.startswith("multi_agent_v1__") for name in names)
    assert upstream.body["messages"][0]["role"] == "system"  # Codex's developer messages


def test_codex_runs_a_command_the_upstream_asks_for_and_sends_its_output(
    proxy: RecordingProxy,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    places: tuple[Path, Path],
    marker: str,
) -> None:
    command = "echo hello-from-tool > tool_out.txt; cat tool_out.txt"
    fake_upstream.script(
        marker,
        fu.tool_calls(fu.ToolCall("exec_command", json.dumps({"cmd": command}), id="call_x1")),
        fu.text("The command printed hello-from-tool."),
    )
    home, workdir = places
    events = codex_exec(proxy, home, workdir, f"Run the tool {marker}")
    assert (workdir / "tool_out.txt").read_text() == "hello-from-tool\n"
    [execution] = items(events, "command_execution")
    assert "hello-from-tool" in execution["aggregated_output"]
    assert [m["text"] for m in items(events, "agent_message")] == [
        "The command printed hello-from-tool."
    ]
    _, second = proxy.requests(marker, path="/v1/responses")
    replayed = [i for i in second.body["input"] if i.get("type") == "function_call"]
    outputs = [i for i in second.body["input"] if i.get("type") == "function_call_output"]
    assert [(c["call_id"], c["name"]) for c in replayed] == [("call_x1", "exec_command")]
    assert outputs and outputs[0]["call_id"] == "call_x1"
    _, upstream = fake_upstream.chat_requests(marker)
    tool_messages = [m for m in upstream.body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_x1"]
    assert "hello-from-tool" in tool_messages[0]["content"]
    opencode_turns.wait_over(marker)
    assert len(fake_upstream.chat_requests(marker)) == 2
