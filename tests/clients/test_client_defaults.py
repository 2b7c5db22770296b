"""Clients at their defaults that force a tool call: pydantic-ai, instructor, the Agents SDK.

Each is used as its documentation shows, unmodified, against the gateway (through the
recording proxy, to see what it sent): pydantic-ai's `Agent(output_type=...)` answers through
an output tool with `tool_choice: "required"`; instructor's `Mode.TOOLS` names its tool in
`tool_choice`; the OpenAI Agents SDK on the Chat Completions API sends the `tool_choice` of its
`ModelSettings`. The gateway makes the upstream call a tool (OpenCode's structured-output path:
the upstream sees `tool_choice: "required"`, and a named tool alone), in one upstream call per
client request, and nothing runs on the host.

instructor runs in a virtualenv of its own (tests/clients/envs/instructor.txt says why), as a
script that prints what it parsed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.clients._support import MODEL, ROOT, RecordingProxy
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY
from tests.support.opencode_turns import OpenCodeTurns

pytestmark = pytest.mark.opencode


class City(BaseModel):
    name: str
    population: int


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return sorted(t["function"]["name"] for t in tools)


# --- pydantic-ai ---------------------------------------------------------------------------


def _pydantic_agent(client: AsyncOpenAI) -> Any:
    """`Agent(model, output_type=City)`, its output tool left at its default (`ToolOutput`)."""
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return Agent(
        OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=client)), output_type=City
    )


def test_pydantic_ai_output_type(
    proxy: RecordingProxy,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    """`Agent(output_type=City)`: its output tool, forced with tool_choice "required"."""
    answer = {"name": "Nantes", "population": 320000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("final_result", json.dumps(answer))))
    client = AsyncOpenAI(base_url=proxy.base_url, api_key=API_KEY)
    try:
        result = _pydantic_agent(client).run_sync(f"Which city? {marker}")
    finally:
        # run_sync leaves its event loop as the thread's, for the next call: none comes here.
        loop = asyncio.get_event_loop_policy().get_event_loop()
        loop.run_until_complete(client.close())
        loop.close()
        asyncio.set_event_loop(None)
    assert result.output == City(**answer)

    [sent] = proxy.chat_requests(marker)
    assert sent.body["tool_choice"] == "required"
    assert _names(sent.body["tools"]) == ["final_result"]
    opencode_turns.wait_over(marker)
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["tool_choice"] == "required"
    assert _names(received.body["tools"]) == ["final_result"]
    parameters = received.body["tools"][0]["function"]["parameters"]
    assert set(parameters["properties"]) == {"name", "population"}


def test_pydantic_ai_output_type_streamed(
    proxy: RecordingProxy,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    """`agent.run_stream()`: the same forced output tool, over a stream."""
    answer = {"name": "Rennes", "population": 225000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("final_result", json.dumps(answer))))

    async def run() -> Any:
        async with AsyncOpenAI(base_url=proxy.base_url, api_key=API_KEY) as client:
            agent = _pydantic_agent(client)
            async with agent.run_stream(f"Which city? {marker}") as streamed:
                return await streamed.get_output()

    assert asyncio.run(run()) == City(**answer)
    [sent] = proxy.chat_requests(marker)
    assert sent.body["stream"] is True and sent.body["tool_choice"] == "required"
    opencode_turns.wait_over(marker)
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["tool_choice"] == "required"


# --- instructor ----------------------------------------------------------------------------

INSTRUCTOR_ENV = ROOT / ".venv" / "clients" / "instructor"

INSTRUCTOR_SCRIPT = """
import json, os, sys
import instructor
from openai import OpenAI
from pydantic import BaseModel

class City(BaseModel):
    name: str
    population: int

client = instructor.from_openai(OpenAI(max_retries=0))  # Mode.TOOLS, its default
city = client.chat.completions.create(
    model=os.environ["MODEL"],
    response_model=City,
    max_retries=0,
    messages=[{"role": "user", "content": sys.argv[1]}],
)
print(json.dumps({"city": city.model_dump(), "instructor": instructor.__version__}))
"""


def _instructor_python() -> Path:
    python = INSTRUCTOR_ENV / "bin" / "python"
    if not (INSTRUCTOR_ENV / ".installed").is_file():
        pytest.skip(
            f"instructor is not installed in {INSTRUCTOR_ENV.relative_to(ROOT)}: scripts/install "
            "makes it from tests/clients/envs/instructor.txt (it could not, here)"
        )
    return python


def test_instructor_mode_tools(
    proxy: RecordingProxy,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
    tmp_path: Path,
) -> None:
    """`instructor.from_openai(OpenAI())`, `response_model=City`: a named tool_choice."""
    answer = {"name": "Lille", "population": 236000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("City", json.dumps(answer))))
    script = tmp_path / "extract.py"
    script.write_text(INSTRUCTOR_SCRIPT)
    proc = subprocess.run(
        [str(_instructor_python()), str(script), f"Extract the city. {marker}"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "OPENAI_BASE_URL": proxy.base_url,
            "OPENAI_API_KEY": API_KEY,
            "MODEL": MODEL,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    printed = json.loads(proc.stdout.splitlines()[-1])
    assert printed["instructor"] == "1.17.0"
    assert City(**printed["city"]) == City(**answer)

    [sent] = proxy.chat_requests(marker)
    assert sent.body["tool_choice"] == {"type": "function", "function": {"name": "City"}}
    assert _names(sent.body["tools"]) == ["City"]
    opencode_turns.wait_over(marker)
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["tool_choice"] == "required"
    assert _names(received.body["tools"]) == ["City"]


# --- the OpenAI Agents SDK -----------------------------------------------------------------

#: What the agent's tool was called with, test by test (the SDK runs it in this process: it is
#: the client's own tool).
WEATHER_CALLS: list[str] = []


@pytest.mark.parametrize("tool_choice", ["required", "get_weather"])
def test_openai_agents_tool_choice(
    proxy: RecordingProxy,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
    tool_choice: str,
) -> None:
    """An `Agent` with a function tool and `ModelSettings(tool_choice=...)`, on
    `OpenAIChatCompletionsModel`: the first call is forced, the SDK runs the tool, and (its
    default `reset_tool_choice`) the next call lets the model answer in text."""
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)  # its traces go to OpenAI's platform otherwise

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        WEATHER_CALLS.append(city)
        return f"18 C and sunny in {city}"

    @function_tool
    def get_time(timezone: str) -> str:
        """The time in a timezone."""
        return "12:00"

    fake_upstream.script(
        marker,
        fu.tool_calls(fu.ToolCall("get_weather", json.dumps({"city": "Lima"}))),
        fu.text("It is 18 C and sunny in Lima."),
    )

    async def run() -> Any:
        async with AsyncOpenAI(base_url=proxy.base_url, api_key=API_KEY) as client:
            agent = Agent(
                name="weather",
                instructions="Answer with the weather.",
                tools=[get_weather, get_time],
                model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
                model_settings=ModelSettings(tool_choice=tool_choice),
            )
            return await Runner.run(agent, f"Weather in Lima? {marker}")

    WEATHER_CALLS.clear()
    # A loop of its own (Runner.run_sync keeps one per process, which a second test finds shut).
    result = asyncio.run(run())
    assert result.final_output == "It is 18 C and sunny in Lima."
    assert WEATHER_CALLS == ["Lima"]

    first, second = (r.body for r in proxy.chat_requests(marker))
    expected = (
        "required"
        if tool_choice == "required"
        else {"type": "function", "function": {"name": "get_weather"}}
    )
    assert first["tool_choice"] == expected
    assert _names(first["tools"]) == ["get_time", "get_weather"]
    assert second.get("tool_choice", "auto") == "auto"
    [tool_message] = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_message["content"] == "18 C and sunny in Lima"
    opencode_turns.wait_over(marker)
    forced, answered = fake_upstream.chat_requests(marker)
    assert forced.body["tool_choice"] == "required"
    offered = ["get_time", "get_weather"] if tool_choice == "required" else ["get_weather"]
    assert _names(forced.body["tools"]) == offered
    assert answered.step == 1 and answered.body.get("tool_choice") != "required"
