"""The OpenCode plugin: its Node tests, and the names it shares with the gateway's Python.

The plugin's own tests are `tests/plugin/*.test.mjs` (Node's built-in runner, no npm package);
this runs them so that CI does. No OpenCode here: tests/integration/test_plugin_errors.py
drives the plugin through a real `opencode serve`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from opencode_openai.backend import plugin_contract, prompt, workspace
from opencode_openai.core.models import ModelRef
from opencode_openai.core.plan import (
    AssistantMessage,
    ClientTool,
    Sampling,
    TextPart,
    TurnPlan,
    UserMessage,
)

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_TESTS = ROOT / "tests" / "plugin"
# The plugin is an ES module in a folder without package.json "type": Node says so, once.
NODE = ["node", "--disable-warning=MODULE_TYPELESS_PACKAGE_JSON"]


def test_node_tests_of_the_plugin_pass() -> None:
    files = sorted(str(p) for p in PLUGIN_TESTS.glob("*.test.mjs"))
    assert files, f"no Node tests in {PLUGIN_TESTS}"
    proc = subprocess.run(
        [*NODE, "--test", "--test-reporter=tap", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    counts = dict(re.findall(r"^# (pass|fail) (\d+)$", proc.stdout, re.MULTILINE))
    assert proc.returncode == 0 and counts.get("fail") == "0", proc.stdout + proc.stderr
    assert int(counts.get("pass", "0")) >= 40, proc.stdout  # a run that found no tests is no pass


def test_python_reads_the_shared_names_from_the_plugins_contract_file() -> None:
    raw = json.loads((ROOT / "backend" / "plugin" / "contract.json").read_text())
    assert plugin_contract.CONTRACT_PATH.resolve() == (ROOT / "backend/plugin/contract.json")
    assert plugin_contract.PLUGIN_PATH.resolve() == (ROOT / "backend/plugin/opencode-openai.js")
    assert {key: value for key, value in raw.items() if not key.startswith("$")} == {
        "agent": plugin_contract.AGENT,
        "agentReadyDescription": plugin_contract.AGENT_READY_DESCRIPTION,
        "metadataKey": plugin_contract.METADATA_KEY,
        "toolsFile": plugin_contract.TOOLS_FILE,
        "structuredOutputTool": plugin_contract.STRUCTURED_OUTPUT,
    }


WEATHER = ClientTool(
    "get_weather",
    "Current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


PLAN = TurnPlan(
    model=ModelRef("fake", "fake-model"),
    system=("Be brief.",),
    messages=(
        UserMessage((TextPart("hello"),)),
        AssistantMessage("hi"),
        UserMessage((TextPart("weather?"),)),
    ),
    sampling=Sampling(temperature=0.25),
    tools=(WEATHER,),
)


def test_the_gateway_writes_the_contract_names(tmp_path: Path) -> None:
    """The prompt body and workspace files the gateway writes use plugin_contract's names."""
    body = prompt.prompt_body(PLAN)
    assert body["agent"] == plugin_contract.AGENT
    assert [list(part.get("metadata", {})) for part in body["parts"]] == [
        [plugin_contract.METADATA_KEY]
    ]
    directory = workspace.prepare_workspace(tmp_path / "toolset", (WEATHER,))
    assert json.loads((directory / plugin_contract.TOOLS_FILE).read_text()) == [WEATHER.as_json()]
    config = json.loads((directory / "opencode.json").read_text())
    assert config["plugin"] == [plugin_contract.PLUGIN_PATH.resolve().as_uri()]
    agent = config["agent"][plugin_contract.AGENT]
    assert agent["permission"][plugin_contract.STRUCTURED_OUTPUT] == "allow"


def _plugin_sees(directory: Path, body: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    body_file = tmp_path / "body.json"
    body_file.write_text(json.dumps(body))
    proc = subprocess.run(
        [
            *NODE,
            str(PLUGIN_TESTS / "agree.mjs"),
            str(directory),
            str(body_file),
            plugin_contract.STRUCTURED_OUTPUT,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_the_plugin_reads_what_the_gateway_writes(tmp_path: Path) -> None:
    """Both sides at once: the workspace and prompt body the gateway's Python writes, as the
    plugin itself reads them (tools file name, metadata key, StructuredOutput)."""
    directory = workspace.prepare_workspace(tmp_path / "toolset", (WEATHER,))
    seen = _plugin_sees(directory, prompt.prompt_body(PLAN), tmp_path)
    assert seen == {
        "agents": {plugin_contract.AGENT: plugin_contract.AGENT_READY_DESCRIPTION},
        "tools": {
            "get_weather": {"description": WEATHER.description, "parameters": WEATHER.parameters}
        },
        "system": ["Be brief."],
        "messages": [
            {"role": "user", "parts": ["hello"]},
            {"role": "assistant", "parts": ["hi"]},
            {"role": "user", "parts": ["weather?"]},
        ],
        "temperature": 0.25,
        "runs": {plugin_contract.STRUCTURED_OUTPUT: True, "bash": False},
    }
