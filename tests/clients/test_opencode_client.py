"""OpenCode itself as a client: `opencode run` with the gateway as a custom provider.

A second, isolated OpenCode (its own HOME and XDG dirs, a config of its own, an empty project
directory) uses `@ai-sdk/openai-compatible` with `baseURL` = the gateway's `/v1`, exactly as a
user would configure it. It runs its real agent: the fake upstream first asks for its `read`
tool, OpenCode reads the file in its project directory and sends the content back, and the
final text is what `opencode run` prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.clients._support import ROOT, RecordingProxy
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY

pytestmark = pytest.mark.opencode

OPENCODE = ROOT / "node_modules" / ".bin" / "opencode"
TITLE_PROMPT = "You are a title generator"


def client_config(base_url: str) -> dict[str, object]:
    """What the README's "Works with" table shows for OpenCode (model ids keep their `/`)."""
    return {
        "autoupdate": False,
        "share": "disabled",
        "enabled_providers": ["gw"],
        "provider": {
            "gw": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "opencode-openai gateway",
                "options": {"baseURL": base_url, "apiKey": API_KEY},
                "models": {
                    # The limits `client-config opencode` copies from GET /v1/models; without
                    # them OpenCode asks for max_tokens 32000 and the gateway clamps it to 4096.
                    "fake/fake-model": {
                        "name": "Fake model via the gateway",
                        "limit": {"context": 100000, "output": 4096},
                    },
                },
            }
        },
    }


def test_opencode_run_through_the_gateway(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    project = tmp_path / "project"
    notes = project / "notes.md"
    fake_upstream.script(
        marker,
        # The question: the model asks to read the notes.
        fu.tool_calls(fu.ToolCall("read", json.dumps({"filePath": str(notes)}))),
        # The file's content is in: it answers.
        fu.text("The project has one note."),
    )
    # OpenCode's title request: registered last, so it wins (its messages hold the marker too).
    fake_upstream.script(TITLE_PROMPT, fu.text("A title"))
    for directory in (
        home,
        project,
        tmp_path / "config",
        tmp_path / "data",
        tmp_path / "cache",
        tmp_path / "state",
    ):
        directory.mkdir()
    notes.write_text("buy oat milk\n")
    config = tmp_path / "opencode.json"
    config.write_text(json.dumps(client_config(proxy.base_url)))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "OPENCODE_CONFIG": str(config),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        # `opencode run` takes its project directory from $PWD, not from its cwd.
        "PWD": str(project),
    }
    proc = subprocess.run(
        [str(OPENCODE), "run", "-m", "gw/fake/fake-model", f"Which notes are there? {marker}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "The project has one note." in proc.stdout

    sent = [r for r in proxy.chat_requests(marker) if TITLE_PROMPT not in r.raw_body.decode()]
    assert len(sent) == 2, [r.body for r in sent]
    first, second = (r.body for r in sent)
    # What OpenCode sends: its whole agent prompt, its tools, tool_choice "auto", a stream.
    assert first["tool_choice"] == "auto"
    assert {"bash", "read", "glob", "edit", "write"} <= {
        t["function"]["name"] for t in first["tools"]
    }
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["max_tokens"] == 4096
    # It ran the tool itself and sent the result back as OpenAI tool messages.
    [call_message] = [m for m in second["messages"] if m.get("tool_calls")]
    assert call_message["tool_calls"][0]["function"]["name"] == "read"
    [tool_message] = [m for m in second["messages"] if m["role"] == "tool"]
    assert "buy oat milk" in json.dumps(tool_message["content"])
    # The upstream saw the same conversation, tools included, one call per client request.
    upstream = [
        r for r in fake_upstream.chat_requests(marker) if TITLE_PROMPT not in json.dumps(r.body)
    ]
    assert len(upstream) == 2
    assert "read" in {t["function"]["name"] for t in upstream[0].body["tools"]}
    titles = [r for r in proxy.chat_requests(marker) if TITLE_PROMPT in r.raw_body.decode()]
    assert len(titles) == 1 and "tools" not in titles[0].body
