"""The documentation's tested snippets, run as they are against the test gateway.

A code block in README.md or docs/ is tested when the line before it is `<!-- tested: NAME -->`
(see docs/clients/index.md, "Tested snippets"). Each NAME has a case here: the text of the
snippet's request that the fake upstream's script matches, what the fake model answers (fresh
random text, JSON or a tool call on every run), and what the snippet's output must then show.

Python blocks run with this interpreter, `js` blocks as ES modules with node (from the
repository root, so `openai`, `ai`... resolve from node_modules), `sh` blocks with bash; each
with OPENAI_API_KEY set to the test gateway's key and `http://127.0.0.1:4040` replaced by the
test gateway's address. A `json` block is not run itself: the case that needs it writes it to a
file first (the OpenCode client config).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOCS_URL = "http://127.0.0.1:4040"
MODEL = "fake/fake-model"  # what `opencode/default` resolves to in the test gateway

_FENCE = re.compile(r"^(`{3,})(\S*)\s*$")
_TESTED = re.compile(r"^<!-- tested: ([a-z0-9-]+) -->\s*$")


@dataclass(frozen=True)
class Snippet:
    name: str
    page: Path
    line: int
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def marked_snippets() -> dict[str, Snippet]:
    """Every block marked `<!-- tested: NAME -->`, by name (markers inside fences do not count)."""
    found: dict[str, Snippet] = {}
    for page in PAGES:
        lines = page.read_text().splitlines(keepends=True)
        name: str | None = None
        i = 0
        while i < len(lines):
            opening = _FENCE.match(lines[i])
            if opening is None:
                marker = _TESTED.match(lines[i])
                name = marker.group(1) if marker else None
                i += 1
                continue
            ticks, lang, start = opening.group(1), opening.group(2), i
            i += 1
            body: list[str] = []
            while i < len(lines) and not re.match(rf"^{ticks}`*\s*$", lines[i]):
                body.append(lines[i])
                i += 1
            if name is not None:
                snippet = Snippet(name, page, start + 1, lang, "".join(body))
                assert name not in found, f"{name} marks {found[name].where} and {snippet.where}"
                found[name] = snippet
            name = None
            i += 1
    return found


# --- what each snippet must show --------------------------------------------------------------


@dataclass
class Run:
    """One snippet's run: its output, this run's random token, what the fake model received."""

    token: str
    number: int
    stdout: str
    upstream: list[fu.RecordedRequest]

    @property
    def text(self) -> str:
        """The scripted answer text."""
        return f"The answer is {self.token}."

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Case:
    #: Text of the snippet's request that the fake's script matches (None: no model call).
    prompt: str | None
    replies: Callable[[Run], Sequence[fu.Reply]]
    check: Callable[[Run], None]
    #: Other tested blocks this one needs, written to these file names first.
    files: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 90.0


def _text(usage: fu.Usage | None = None) -> Callable[[Run], Sequence[fu.Reply]]:
    return lambda run: [fu.text(run.text, usage=usage or fu.Usage())]


def _city(run: Run) -> Sequence[fu.Reply]:
    answer = {"name": run.token, "population": run.number}
    return [fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(answer)))]


def _shows(*expected: Callable[[Run], str]) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for make in expected:
            assert make(run) in run.stdout

    return check


def _answer(run: Run) -> str:
    return run.text


def _city_line(run: Run) -> str:
    return f"{run.token} {run.number}"


def _sse_content(stdout: str) -> str:
    chunks = [json.loads(line[6:]) for line in stdout.splitlines() if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _check_readme_curl(run: Run) -> None:
    assert '"opencode/default"' in run.stdout and f'"{MODEL}"' in run.stdout
    assert run.text in run.stdout  # the non-streamed answer, whole
    assert _sse_content(run.stdout) == run.text  # the stream, delta by delta
    assert run.stdout.rstrip().endswith("data: [DONE]")
    assert len(run.upstream) == 2


def _check_readme_python(run: Run) -> None:
    assert run.stdout.count(run.text) == 2  # once whole, once streamed
    assert len(run.upstream) == 2


def _check_python_chat(run: Run) -> None:
    assert run.text in run.stdout
    assert f"{MODEL} 17" in run.stdout
    [sent] = run.upstream
    assert sent.body["temperature"] == 0.2
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}


def _check_python_tools(run: Run) -> None:
    assert run.stdout.strip() == run.text
    first, second = run.upstream
    assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
    assert second.body["messages"][-1]["role"] == "tool"
    assert second.body["messages"][-1]["content"] == "18 C and sunny in Lima"


def _check_python_models(run: Run) -> None:
    lines = run.stdout.splitlines()
    assert f"{MODEL} fake" in lines and "opencode/default opencode" in lines
    assert lines[-1] == "opencode/default"


def _check_node_json(run: Run) -> None:
    assert _city_line(run) in run.stdout
    [sent] = run.upstream
    [tool] = sent.body["tools"]
    assert tool["function"]["name"] == "StructuredOutput"
    assert set(tool["function"]["parameters"]["properties"]) == {"name", "population"}


def _check_opencode_run(run: Run) -> None:
    assert run.text in run.stdout
    # OpenCode's agent request came through the gateway: its own tools reached the model.
    agent = [r for r in run.upstream if r.body.get("tools")]
    assert agent, [r.body for r in run.upstream]
    assert {"bash", "read"} <= {t["function"]["name"] for t in agent[0].body["tools"]}


def _check_curl_models(run: Run) -> None:
    ids = [m["id"] for m in run.json()["data"]]
    assert MODEL in ids and ids[-1] == "opencode/default"


def _check_curl_chat(run: Run) -> None:
    reply = run.json()
    assert reply["choices"][0]["message"]["content"] == run.text
    assert reply["model"] == MODEL
    [sent] = run.upstream
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}


def _check_curl_stream(run: Run) -> None:
    assert _sse_content(run.stdout) == run.text
    chunks = [
        json.loads(line[6:]) for line in run.stdout.splitlines() if line.startswith("data: {")
    ]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert run.stdout.rstrip().endswith("data: [DONE]")


def _check_curl_tools(run: Run) -> None:
    [choice] = run.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == f"call_{run.token}"
    assert call["function"]["name"] == "get_time"
    assert json.loads(call["function"]["arguments"]) == {"tz": "Asia/Tokyo"}


def _check_curl_health(run: Run) -> None:
    health = run.json()
    assert health["status"] == "ok" and health["backend"]["ready"] is True
    assert health["backend"]["models"] >= 1


CASES: dict[str, Case] = {
    "readme-curl": Case("Say hello.", _text(), _check_readme_curl),
    "readme-python": Case("Say hello.", _text(), _check_readme_python),
    "openai-python-chat": Case(
        "What is the capital of France?", _text(fu.Usage(12, 5)), _check_python_chat
    ),
    "openai-python-stream": Case(
        "Count to five.",
        _text(fu.Usage(7, 3)),
        _shows(_answer, lambda run: "\n3 completion tokens"),
    ),
    "openai-python-structured": Case("The largest city of Japan", _city, _shows(_city_line)),
    "openai-python-tools": Case(
        "What is the weather in Lima?",
        lambda run: [
            fu.tool_calls(fu.ToolCall("get_weather", json.dumps({"city": "Lima"}))),
            fu.text(run.text),
        ],
        _check_python_tools,
    ),
    "openai-python-models": Case(None, lambda run: [], _check_python_models),
    "openai-node-chat": Case(
        "What is the capital of Peru?",
        _text(fu.Usage(12, 5)),
        _shows(_answer, lambda run: f"{MODEL} 17"),
    ),
    "openai-node-stream": Case(
        "Name three rivers.", _text(fu.Usage(7, 3)), _shows(_answer, lambda run: "\n10 tokens")
    ),
    "openai-node-json": Case("The largest city of Brazil", _city, _check_node_json),
    "langchain-invoke": Case(
        "Translate 'good morning' into Spanish.",
        _text(fu.Usage(12, 5)),
        _shows(_answer, lambda run: f"{MODEL} 17"),
    ),
    "langchain-stream": Case(
        "Write a limerick about a cat.",
        _text(fu.Usage(5, 3)),
        _shows(_answer, lambda run: "\n3 output tokens"),
    ),
    "langchain-structured": Case("The capital of Italy", _city, _shows(_city_line)),
    "vercel-ai-generate-text": Case(
        "Describe the sea in one sentence.",
        _text(fu.Usage(11, 3)),
        _shows(_answer, lambda run: "11 in, 3 out"),
    ),
    "vercel-ai-stream-text": Case(
        "Name the planets of the solar system.",
        _text(fu.Usage(4, 3)),
        _shows(_answer, lambda run: "\n3 output tokens"),
    ),
    "vercel-ai-generate-object": Case("The largest city of Canada.", _city, _shows(_city_line)),
    "opencode-run": Case(
        "Which notes are in this project?",
        _text(),
        _check_opencode_run,
        files={"opencode-config": "opencode.json"},
        timeout_s=150.0,
    ),
    "curl-models": Case(None, lambda run: [], _check_curl_models),
    "curl-chat": Case("What is the boiling point of water?", _text(), _check_curl_chat),
    "curl-stream": Case("Spell the word curl.", _text(fu.Usage(6, 2)), _check_curl_stream),
    "curl-tools": Case(
        "What time is it in Tokyo?",
        lambda run: [
            fu.tool_calls(
                fu.ToolCall("get_time", json.dumps({"tz": "Asia/Tokyo"}), id=f"call_{run.token}")
            )
        ],
        _check_curl_tools,
    ),
    "curl-health": Case(None, lambda run: [], _check_curl_health),
}


def test_every_tested_block_has_a_case_and_every_case_a_block() -> None:
    marked = set(marked_snippets())
    needed = {name for case in CASES.values() for name in case.files}
    assert marked == set(CASES) | needed, (
        f"marked without a case: {sorted(marked - set(CASES) - needed)}; "
        f"cases without a marked block: {sorted((set(CASES) | needed) - marked)}"
    )


# --- running them ---------------------------------------------------------------------------


def _environment(home: Path) -> dict[str, str]:
    """The caller's environment without OpenAI or OpenCode settings, plus the gateway's key.

    HOME and the XDG directories are the run's own, so that an OpenCode client snippet reads
    no user config and writes nothing outside the test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OPENCODE_"))}
    xdg = {name: home / name.lower() for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME")}
    xdg |= {name: home / name.lower() for name in ("XDG_CACHE_HOME", "XDG_STATE_HOME")}
    for directory in (home, *xdg.values()):
        directory.mkdir(parents=True, exist_ok=True)
    env.update({name: str(path) for name, path in xdg.items()})
    env.update(
        HOME=str(home),
        OPENAI_API_KEY=API_KEY,
        PATH=f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        # The OpenCode client: no update check, no model list from the network.
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_MODELS_FETCH="1",
    )
    return env


def _command(snippet: Snippet, workdir: Path) -> tuple[list[str], Path]:
    if snippet.lang == "python":
        script = workdir / f"{snippet.name}.py"
        script.write_text(snippet.code)
        return [sys.executable, str(script)], workdir
    if snippet.lang == "js":
        return ["node", "--input-type=module", "--eval", snippet.code], ROOT
    if snippet.lang == "sh":
        return ["bash", "-euo", "pipefail", "-c", snippet.code], workdir
    raise AssertionError(f"{snippet.where}: no way to run a ```{snippet.lang} block")


@pytest.mark.opencode
@pytest.mark.parametrize("name", sorted(CASES))
def test_snippet(
    name: str, gateway: GatewayServer, fake_upstream: fu.FakeUpstream, tmp_path: Path
) -> None:
    snippets = marked_snippets()
    assert name in snippets, f"no block is marked <!-- tested: {name} -->"
    snippet, case = snippets[name], CASES[name]
    if case.prompt is not None:
        assert case.prompt in snippet.code, f"{snippet.where} no longer asks {case.prompt!r}"
    uses_url = DOCS_URL in snippet.code or any(DOCS_URL in snippets[n].code for n in case.files)
    assert uses_url, f"{snippet.where} does not talk to {DOCS_URL}"
    workdir = tmp_path / "project"
    workdir.mkdir()
    for needed, filename in case.files.items():
        (workdir / filename).write_text(snippets[needed].code.replace(DOCS_URL, gateway.url))

    run = Run(
        token=secrets.token_hex(6), number=secrets.randbelow(10**6) + 1, stdout="", upstream=[]
    )
    before = len(fake_upstream.chat_requests(case.prompt)) if case.prompt else 0
    if case.prompt is not None:
        fake_upstream.script(case.prompt, *case.replies(run))
    local = replace(snippet, code=snippet.code.replace(DOCS_URL, gateway.url))
    command, cwd = _command(local, workdir)
    env = _environment(tmp_path / "home")
    # `opencode run` takes its project directory from $PWD, not from its working directory.
    env["PWD"] = str(cwd)
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=case.timeout_s
    )
    assert proc.returncode == 0, (
        f"{snippet.where} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    run.stdout = proc.stdout
    if case.prompt is not None:
        run.upstream = fake_upstream.chat_requests(case.prompt)[before:]
    try:
        case.check(run)
    except AssertionError as exc:
        raise AssertionError(
            f"{snippet.where}: {exc}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ) from exc
