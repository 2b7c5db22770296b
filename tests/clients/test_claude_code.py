"""Claude Code (`@anthropic-ai/claude-code`, pinned), unmodified, pointed at the gateway.

Run as its users run it for one question: `claude -p PROMPT` with `ANTHROPIC_BASE_URL` at the
gateway (through the recording proxy, to see what it sends), the key as `ANTHROPIC_API_KEY`
(sent as `x-api-key`) or `ANTHROPIC_AUTH_TOKEN` (sent as `Authorization: Bearer`), and `--model`
a gateway id (or an alias, once the gateway has them). Its config, home and working directory
are the test's own; nothing reaches the network but the gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients._support import ROOT, RecordingProxy
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, attached_to

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"
#: The model ids Claude Code 2.1.332 asks for by default (its `--model` default).
CLAUDE_CODE_DEFAULTS = ("claude-opus-5-5",)


def claude_binary() -> Path:
    """The native binary of the pinned package (its npm wrapper only finds it)."""
    for candidate in (
        ROOT / "node_modules/@anthropic-ai/claude-code-linux-x64/claude",
        ROOT / "node_modules/@anthropic-ai/claude-code/bin/claude.exe",
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("Claude Code is not installed: run scripts/install (npm devDependencies)")


def claude(
    tmp_path: Path, proxy: RecordingProxy, prompt: str, *args: str, key: str = "api_key"
) -> dict[str, Any]:
    return run_claude(tmp_path, proxy.url, prompt, *args, key=key)


def run_claude(
    tmp_path: Path, base_url: str, prompt: str, *args: str, key: str = "api_key"
) -> dict[str, Any]:
    """Run `claude -p PROMPT ARGS --output-format json` in `tmp_path/work`; its JSON result."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    env["ANTHROPIC_API_KEY" if key == "api_key" else "ANTHROPIC_AUTH_TOKEN"] = API_KEY
    started = time.monotonic()
    proc = subprocess.run(
        [str(claude_binary()), "-p", prompt, "--output-format", "json", *args],
        env=env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"claude exited {proc.returncode} after {time.monotonic() - started:.1f} s\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.mark.parametrize("key", ["api_key", "auth_token"])
def test_a_plain_answer(
    tmp_path: Path, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, key: str
) -> None:
    fake_upstream.script(marker, fu.text("Hello from the gateway."))
    result = claude(tmp_path, proxy, f"Say hello. {marker}", "--model", MODEL, key=key)
    assert result["is_error"] is False, result
    assert result["result"] == "Hello from the gateway."

    [sent] = proxy.requests(marker, path="/v1/messages")
    assert sent.path.endswith("?beta=true")
    assert sent.headers["anthropic-version"] == "2023-06-01"
    if key == "api_key":
        assert sent.headers["x-api-key"] == API_KEY and "authorization" not in sent.headers
    else:
        assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.body["model"] == MODEL and sent.body["stream"] is True
    [upstream] = fake_upstream.chat_requests(marker)
    assert upstream.body["max_tokens"] == 4096  # Claude Code's 32000+ clamped to the model's
    assert any(t["function"]["name"] == "Read" for t in upstream.body["tools"])


def test_read_tool_round_trip(
    tmp_path: Path, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text("The secret word is pumpernickel.\n")
    fake_upstream.script(
        marker,
        fu.tool_calls(fu.ToolCall("Read", json.dumps({"file_path": str(notes)}))),
        fu.text("The file says the secret word is pumpernickel."),
    )
    result = claude(
        tmp_path, proxy, f"What does notes.txt say? {marker}", "--model", MODEL,
        "--allowedTools", "Read",
    )  # fmt: skip
    assert result["is_error"] is False, result
    assert result["result"] == "The file says the secret word is pumpernickel."
    assert result["num_turns"] == 2

    call, answer = fake_upstream.chat_requests(marker)
    assert call.step == 0 and answer.step == 1
    tool_messages = [m for m in answer.body["messages"] if m["role"] == "tool"]
    [result_message] = tool_messages
    assert "pumpernickel" in json.dumps(result_message["content"])
    sent = proxy.requests(marker, path="/v1/messages")
    assert len(sent) == 2
    blocks = [b for m in sent[1].body["messages"] if m["role"] == "user" for b in m["content"]
              if isinstance(b, dict) and b.get("type") == "tool_result"]  # fmt: skip
    assert len(blocks) == 1 and blocks[0]["tool_use_id"].startswith("toolu_")


@pytest.fixture(scope="module")
def aliased(gateway: GatewayServer) -> Iterator[GatewayServer]:
    """A gateway that answers Claude Code's default model ids with the fake model."""
    server = attached_to(
        gateway,
        model_aliases=tuple((name, MODEL) for name in CLAUDE_CODE_DEFAULTS),
    )
    yield server
    server.stop()


def test_its_default_model_ids_through_aliases(
    tmp_path: Path, aliased: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """Without `--model` Claude Code asks for its own default id (`claude-opus-5-5`, and
    `claude-…` ids for --model opus / sonnet / haiku): aliases answer each."""
    fake_upstream.script(marker, fu.text("Aliased."))
    result = run_claude(tmp_path, aliased.url, f"Say hi. {marker}")
    assert result["is_error"] is False, result
    assert result["result"] == "Aliased."
    [upstream] = fake_upstream.chat_requests(marker)
    assert upstream.body["model"] == "fake-model"
