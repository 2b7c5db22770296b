"""The plugin's failures, through a real `opencode serve`: never silent, never without the guard.

OpenCode 1.18.33 runs a workspace instance *without* a plugin whose factory throws or whose
module does not load (it logs "failed to load plugin", or only publishes an error event, and goes
on): the first tests pin that, because it is why the plugin never throws while loading. Its
problems (no contract file, a broken tools file) instead fail every model call of the instance
from `chat.params`, with a message that names the file and reaches the API client.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from opencode_openai.backend import plugin_contract, worker, workspace
from opencode_openai.core.plan import ClientTool
from tests.support import fake_upstream as fu
from tests.support.gateway import GatewayServer

pytestmark = pytest.mark.opencode

MODEL = {"providerID": "fake", "modelID": "fake-model"}


@pytest.fixture
def opencode(gateway: GatewayServer) -> Iterator[httpx.Client]:
    """The gateway's own `opencode serve`, called directly (v1 API, Basic auth)."""
    assert gateway.backend is not None
    process = gateway.backend.workers[0].process
    assert process is not None
    token = base64.b64encode(f"opencode:{process.password}".encode()).decode()
    with httpx.Client(
        base_url=process.url, headers={"Authorization": f"Basic {token}"}, timeout=60
    ) as client:
        yield client


def ask(opencode: httpx.Client, directory: Path, body: dict[str, Any]) -> dict[str, Any]:
    """One blocking prompt in a new session of `directory`'s instance: the assistant message."""
    params = {"directory": str(directory)}
    session = opencode.post("/session", params=params, json={"title": "plugin test"})
    session.raise_for_status()
    reply = opencode.post(f"/session/{session.json()['id']}/message", params=params, json=body)
    reply.raise_for_status()
    info: dict[str, Any] = reply.json()["info"]
    return info


def body(marker: str, *, metadata: bool = True) -> dict[str, Any]:
    request = {
        "system": ["plugin test"],
        "messages": [{"role": "user", "parts": [{"type": "text", "text": marker}]}],
        "params": {},
    }
    part: dict[str, Any] = {"type": "text", "text": marker}
    if metadata:
        part["metadata"] = {plugin_contract.METADATA_KEY: request}
    return {"agent": plugin_contract.AGENT, "model": MODEL, "parts": [part]}


def workspace_with_plugin(directory: Path, plugin_source: str) -> Path:
    """A gateway workspace whose opencode.json loads this plugin instead of the gateway's."""
    directory = workspace.prepare_workspace(directory)
    plugin = directory / "plugin-under-test.js"
    plugin.write_text(plugin_source)
    config = json.loads((directory / "opencode.json").read_text())
    config["plugin"] = [plugin.as_uri()]
    (directory / "opencode.json").write_text(json.dumps(config))
    return directory


def broken_toolset(directory: Path, content: str) -> Path:
    """A tool-set workspace as the gateway writes it, then its tools file overwritten."""
    tool = ClientTool("lookup", "A tool.", {"type": "object", "properties": {}})
    directory = workspace.prepare_workspace(directory, (tool,))
    tools_file = directory / plugin_contract.TOOLS_FILE
    tools_file.write_text(content)
    return tools_file


def letters_only_dir() -> Path:
    """A new directory whose path has no digits.

    OpenCode retries a failed model call (five times, backing off) when the error's message
    merely contains "500", "429", "terminated"... (SessionRetry in 1.18.33): a blocking prompt
    would then take a minute. Through the gateway that does not matter (it fails at the first
    retry, with the same message); here the message must stay clear of such words.
    """
    name = "".join(random.choices(string.ascii_lowercase, k=16))
    directory = Path(tempfile.gettempdir()) / f"opencode-openai-plugin-test-{name}"
    assert not re.search(r"\d", str(directory)), directory
    return directory


@pytest.fixture
def plain_dir() -> Iterator[Path]:
    directory = letters_only_dir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    "source",
    [
        "export const Broken = async () => { throw new Error('factory failed'); };\n",
        "throw new Error('module failed');\nexport const Broken = async () => ({});\n",
    ],
    ids=["factory-throws", "module-throws"],
)
def test_opencode_runs_the_instance_without_a_plugin_that_throws_while_loading(
    opencode: httpx.Client,
    fake_upstream: fu.FakeUpstream,
    marker: str,
    tmp_path: Path,
    source: str,
) -> None:
    directory = workspace_with_plugin(tmp_path / "ws", source)
    fake_upstream.script(marker, fu.text("answered without the plugin"))
    info = ask(opencode, directory, body(marker))
    assert info.get("error") is None
    [request] = fake_upstream.chat_requests(marker)
    # Without the plugin, OpenCode's own system prompt goes upstream, not the client's.
    system = [m["content"] for m in request.body["messages"] if m["role"] == "system"]
    assert system and "plugin test" not in system and "<env>" in "".join(system)


def test_the_plugin_fails_closed_without_its_contract_file(
    opencode: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str, plain_dir: Path
) -> None:
    """The real plugin, copied away from contract.json: loaded all the same, it fails every call."""
    directory = workspace_with_plugin(plain_dir, plugin_contract.PLUGIN_PATH.read_text())
    fake_upstream.script(marker, fu.text("must not be asked"))
    info = ask(opencode, directory, body(marker))
    message = info["error"]["data"]["message"]
    assert message.startswith(f"opencode-openai: cannot use {directory / 'contract.json'}: "), (
        message
    )
    assert fake_upstream.chat_requests(marker) == []


def test_a_broken_tools_file_fails_every_model_call_naming_the_file(
    opencode: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str, plain_dir: Path
) -> None:
    tools_file = broken_toolset(plain_dir, '{"tools": []}')
    fake_upstream.script(marker, fu.text("must not be asked"))
    for metadata in (True, False):  # with the gateway's request or without: no model call
        info = ask(opencode, tools_file.parent, body(marker, metadata=metadata))
        assert info["error"]["data"]["message"] == (
            f"opencode-openai: the tools file {tools_file} is invalid: "
            "expected a JSON array of {name, description, parameters}"
        )
    assert fake_upstream.chat_requests(marker) == []


def test_the_api_client_gets_the_broken_tools_file_error(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    marker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the gateway: its workspace writer is made to leave a cut-off tools file."""

    def prepare_then_break(directory: Path, tools: tuple[ClientTool, ...] = ()) -> Path:
        directory = workspace.prepare_workspace(directory, tools)
        (directory / plugin_contract.TOOLS_FILE).write_text('[{"name": ')
        return directory

    monkeypatch.setattr(worker, "prepare_workspace", prepare_then_break)
    fake_upstream.script(marker, fu.text("must not be asked"))
    # A tool set of its own: no other test shares this (broken) workspace.
    name = "t_" + "".join(random.choices(string.ascii_lowercase, k=16))
    tool: Any = {"type": "function", "function": {"name": name, "parameters": {}}}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="fake/fake-model", messages=[{"role": "user", "content": marker}], tools=[tool]
        )
    message = caught.value.message
    assert caught.value.status_code >= 500, message  # the gateway's fault, not the client's
    assert f"/{plugin_contract.TOOLS_FILE} is not valid JSON" in message, message
    assert "opencode-openai: the tools file " in message, message
    assert fake_upstream.chat_requests(marker) == []


def agent_description(opencode: httpx.Client, directory: Path) -> str:
    agents = opencode.get("/agent", params={"directory": str(directory)}).json()
    [description] = [a.get("description") for a in agents if a["name"] == plugin_contract.AGENT]
    return str(description)


def test_get_agent_tells_the_gateway_whether_the_plugin_runs(
    opencode: httpx.Client, tmp_path: Path, plain_dir: Path
) -> None:
    """What the gateway can check when it opens an instance: ready, broken (why), or not loaded."""
    tool = ClientTool("lookup", "A tool.", {"type": "object", "properties": {}})
    ready = workspace.prepare_workspace(tmp_path / "ready", (tool,))
    assert agent_description(opencode, ready) == plugin_contract.AGENT_READY_DESCRIPTION

    tools_file = broken_toolset(plain_dir, "{}")
    assert agent_description(opencode, tools_file.parent) == (
        f"opencode-openai: the tools file {tools_file} is invalid: "
        "expected a JSON array of {name, description, parameters}"
    )

    source = "throw new Error('module failed');\nexport const Broken = async () => ({});\n"
    dropped = workspace_with_plugin(tmp_path / "dropped", source)
    written = json.loads((dropped / "opencode.json").read_text())
    assert (
        agent_description(opencode, dropped)
        == (written["agent"][plugin_contract.AGENT]["description"])
    )
