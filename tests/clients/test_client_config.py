"""`opencode-openai client-config CLIENT`: each printed config, and the clients that use it.

The command runs as a user runs it (a subprocess of the installed CLI) against the real test
gateway, whose `opencode/default` is the fake model (context 100000, output 4096). First each
config is read back the way its client reads it (TOML, YAML, JSON, JSON with comments, a shell
script sourced by bash) and checked for the gateway's URL, the model, its limits and the key's
variable, never the key. Then the clients installable here run with theirs: the openai SDK,
OpenCode (`opencode run`), aider (its own virtualenv), Codex CLI (`/v1/responses`) and Claude
Code (`/v1/messages`), both npm devDependencies.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from opencode_openai.cli.client_config import GatewayModel, Target, render
from tests.clients._support import ROOT, RecordingProxy
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, free_port
from tests.unit.test_docs import DOCS, code_blocks

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"  # what the test gateway's opencode/default stands for
CONTEXT, OUTPUT = 100000, 4096  # its limits in the test OpenCode's catalog
KEY_ENV = "GATEWAY_KEY"
TITLE_PROMPT = "You are a title generator"


def client_config(
    client: str, url: str, *args: str, key_env: str = KEY_ENV, key: str | None = API_KEY
) -> subprocess.CompletedProcess[str]:
    """`opencode-openai client-config CLIENT --url URL --key-env VAR ARGS`, the key in VAR."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", KEY_ENV)}
    if key is not None:
        env[key_env] = key
    command = [sys.executable, "-m", "opencode_openai.cli.main", "client-config", client]
    return subprocess.run(
        [*command, "--url", url, "--key-env", key_env, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def printed(client: str, url: str, *args: str, **kwargs: Any) -> str:
    proc = client_config(client, url, *args, **kwargs)
    assert proc.returncode == 0, proc.stderr
    assert API_KEY not in proc.stdout + proc.stderr  # keys are never printed
    return proc.stdout


def sourced(script: str, home: Path, *names: str) -> dict[str, str]:
    """The variables a shell config sets, once bash has sourced it (HOME is `home`)."""
    config = home / "config.sh"
    config.write_text(script)
    proc = subprocess.run(
        ["bash", "-c", '. "$0" && env -0', str(config)],
        env={"PATH": os.environ["PATH"], "HOME": str(home), KEY_ENV: API_KEY},
        capture_output=True,
        text=True,
        check=True,
    )
    found = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
    return {name: found[name] for name in names if name in found}


def jsonc(text: str) -> Any:
    """JSON with whole-line `//` comments (Zed's settings.json)."""
    return json.loads("\n".join(line for line in text.splitlines() if not line.startswith("//")))


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """A client's environment: its own HOME and XDG dirs, the key in KEY_ENV, nothing else."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), KEY_ENV: API_KEY}
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        directory = home / name.lower()
        directory.mkdir(parents=True, exist_ok=True)
        env[name] = str(directory)
    return {**env, **extra}


# --- the printed configs -------------------------------------------------------------------


def test_codex_config(gateway: GatewayServer) -> None:
    config = tomllib.loads(printed("codex", gateway.url))
    assert config["model"] == MODEL and config["model_context_window"] == CONTEXT
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == gateway.base_url
    assert provider["env_key"] == KEY_ENV and provider["wire_api"] == "responses"


def test_claude_code_config(gateway: GatewayServer, tmp_path: Path) -> None:
    text = printed("claude-code", gateway.url)
    env = sourced(
        text, tmp_path, "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    )  # fmt: skip
    assert env == {
        "ANTHROPIC_BASE_URL": gateway.url,  # Claude Code adds /v1/messages itself
        "ANTHROPIC_AUTH_TOKEN": API_KEY,  # from $GATEWAY_KEY, when sourced
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    assert f"--model-alias claude-opus-5-5={MODEL}" in text


def test_aider_config(gateway: GatewayServer, tmp_path: Path) -> None:
    env = sourced(
        printed("aider", gateway.url), tmp_path,
        "OPENAI_API_BASE", "OPENAI_API_KEY", "AIDER_MODEL", "AIDER_MODEL_METADATA_FILE",
    )  # fmt: skip
    assert env["OPENAI_API_BASE"] == gateway.base_url and env["OPENAI_API_KEY"] == API_KEY
    assert env["AIDER_MODEL"] == f"openai/{MODEL}"
    metadata_file = Path(env["AIDER_MODEL_METADATA_FILE"])
    assert metadata_file == tmp_path / ".config" / "opencode-openai" / "aider.model.metadata.json"
    metadata = json.loads(metadata_file.read_text())
    assert metadata[f"openai/{MODEL}"]["max_input_tokens"] == CONTEXT
    assert metadata[f"openai/{MODEL}"]["max_output_tokens"] == OUTPUT


def test_continue_config(gateway: GatewayServer) -> None:
    config = yaml.safe_load(printed("continue", gateway.url))
    assert (config["name"], config["schema"]) == ("opencode-openai", "v1")
    [model] = config["models"]
    assert model["provider"] == "openai" and model["model"] == MODEL
    assert model["apiBase"] == gateway.base_url
    assert model["apiKey"] == "${{ secrets.GATEWAY_KEY }}"
    assert model["defaultCompletionOptions"] == {"contextLength": CONTEXT, "maxTokens": OUTPUT}
    assert model["capabilities"] == ["tool_use"]


def test_zed_config(gateway: GatewayServer) -> None:
    text = printed("zed", gateway.url)
    settings = jsonc(text)
    provider = settings["language_models"]["openai_compatible"]["opencode-openai"]
    assert provider["api_url"] == gateway.base_url
    [model] = provider["available_models"]
    assert (model["name"], model["max_tokens"], model["max_output_tokens"]) == (
        MODEL,
        CONTEXT,
        OUTPUT,
    )
    assert settings["agent"]["default_model"] == {"provider": "opencode-openai", "model": MODEL}
    # Zed reads the key from a variable named after the provider: the config says how to fill it.
    assert 'export OPENCODE_OPENAI_API_KEY="${GATEWAY_KEY}"' in text


def test_open_webui_config(gateway: GatewayServer, tmp_path: Path) -> None:
    env = sourced(
        printed("open-webui", gateway.url), tmp_path,
        "OPENAI_API_BASE_URL", "OPENAI_API_KEY", "DEFAULT_MODELS",
    )  # fmt: skip
    assert env == {
        "OPENAI_API_BASE_URL": gateway.base_url,
        "OPENAI_API_KEY": API_KEY,
        "DEFAULT_MODELS": MODEL,
    }


def test_opencode_config(gateway: GatewayServer) -> None:
    config = json.loads(printed("opencode", gateway.url))
    provider = config["provider"]["gw"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": gateway.base_url, "apiKey": "{env:GATEWAY_KEY}"}
    assert provider["models"][MODEL]["limit"] == {"context": CONTEXT, "output": OUTPUT}
    assert config["model"] == config["small_model"] == f"gw/{MODEL}"


def test_openai_config(gateway: GatewayServer, tmp_path: Path) -> None:
    text = printed("openai", gateway.url)
    env = sourced(text, tmp_path, "OPENAI_BASE_URL", "OPENAI_API_KEY")
    assert env == {"OPENAI_BASE_URL": gateway.base_url, "OPENAI_API_KEY": API_KEY}
    assert f"# model: {MODEL}" in text


def test_all_models_lists_every_model_the_chosen_one_first(gateway: GatewayServer) -> None:
    config = json.loads(printed("opencode", gateway.url, "--all-models"))
    models = config["provider"]["gw"]["models"]
    assert next(iter(models)) == MODEL
    assert {MODEL, "fake/fake-vision-model", "opencode/default"} <= set(models)
    assert models["fake/fake-vision-model"]["attachment"] is True
    assert models["fake/fake-vision-model"]["modalities"]["input"] == ["text", "image"]


def test_a_chosen_model_and_the_url_with_v1(gateway: GatewayServer) -> None:
    text = printed("codex", gateway.base_url + "/", "--model", "fake/fake-reasoning-model")
    config = tomllib.loads(text)
    assert config["model"] == "fake/fake-reasoning-model"
    assert config["model_providers"]["opencode-openai"]["base_url"] == gateway.base_url


def test_a_model_the_gateway_lacks_is_refused(gateway: GatewayServer) -> None:
    proc = client_config("opencode", gateway.url, "--model", "nope/none")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "has no model nope/none" in proc.stderr and MODEL in proc.stderr


def test_a_refused_key_says_so_and_prints_a_config_without_limits(gateway: GatewayServer) -> None:
    proc = client_config("opencode", gateway.url, key="sk-wrong")
    assert proc.returncode == 0
    assert "refused the key" in proc.stderr and "sk-wrong" not in proc.stdout + proc.stderr
    config = json.loads(proc.stdout)
    assert "limit" not in config["provider"]["gw"]["models"]["opencode/default"]


def test_without_a_gateway_the_config_names_opencode_default() -> None:
    proc = client_config("codex", f"http://127.0.0.1:{free_port()}", key=None)
    assert proc.returncode == 0
    assert "failed" in proc.stderr and "without its limits" in proc.stderr
    config = tomllib.loads(proc.stdout)
    assert config["model"] == "opencode/default" and "model_context_window" not in config


def test_an_odd_key_variable_is_refused() -> None:
    proc = client_config("openai", "http://127.0.0.1:9", key_env="NOT-A-NAME", key=None)
    assert proc.returncode == 2 and "not an environment variable name" in proc.stderr


EXAMPLE = Target(
    "http://127.0.0.1:4040",
    "OPENAI_API_KEY",
    (
        GatewayModel(
            "anthropic/claude-sonnet-4", "Claude Sonnet 4", context=200000, output=64000,
            inputs=("text", "image", "pdf"), tools=True, vision=True, reasoning=True,
        ),
    ),
)  # fmt: skip


def test_the_docs_examples_are_the_commands_output() -> None:
    """Each `<!-- example: client-config CLIENT -->` block in docs/ is what the command prints
    for a gateway whose default model is EXAMPLE's."""
    blocks = [
        block
        for page in sorted(DOCS.rglob("*.md"))
        for block in code_blocks(page)
        if block.kind == "example" and (block.name or "").startswith("client-config ")
    ]
    shown = {block.name.split(" ", 1)[1] for block in blocks if block.name}
    assert shown >= {"codex", "claude-code", "aider", "continue", "zed", "open-webui"}
    for block in blocks:
        assert block.name is not None
        client = block.name.split(" ", 1)[1]
        assert block.code == render(client, EXAMPLE), (
            f"{block.path.relative_to(ROOT)}:{block.line}: the {client} example is not what "
            f"client-config prints; paste this in its place:\n{render(client, EXAMPLE)}"
        )


# --- the clients, run with their printed config ----------------------------------------------


def test_the_openai_sdk_with_its_environment(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, tmp_path: Path
) -> None:
    """`OpenAI()` with no arguments, in the shell the config set up."""
    fake_upstream.script(marker, fu.text("The SDK found the gateway."))
    config = tmp_path / "openai.sh"
    config.write_text(printed("openai", proxy.url, key_env="OPENAI_API_KEY"))
    script = (
        "from openai import OpenAI\n"
        "import sys\n"
        "reply = OpenAI(max_retries=0).chat.completions.create(\n"
        f"    model={MODEL!r}, messages=[{{'role': 'user', 'content': sys.argv[1]}}])\n"
        "print(reply.choices[0].message.content)\n"
    )
    proc = subprocess.run(
        ["bash", "-c", '. "$0" && exec "$@"', str(config), sys.executable, "-c", script, marker],
        env={**client_env(tmp_path), "OPENAI_API_KEY": API_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "The SDK found the gateway."
    [sent] = proxy.chat_requests(marker)
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


def test_opencode_with_its_config(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, tmp_path: Path
) -> None:
    """`opencode run` with the printed opencode.json (plus this test's no-network settings)."""
    fake_upstream.script(marker, fu.text("OpenCode found the gateway."))
    fake_upstream.script(TITLE_PROMPT, fu.text("A title"))  # its title request, via small_model
    config = json.loads(printed("opencode", proxy.url))
    config.update(autoupdate=False, share="disabled", enabled_providers=["gw"])
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir(parents=True)
    (tmp_path / "opencode.json").write_text(json.dumps(config))
    env = client_env(
        home,
        OPENCODE_CONFIG=str(tmp_path / "opencode.json"),
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_MODELS_FETCH="1",
        PWD=str(project),  # `opencode run` takes its project directory from $PWD
    )
    proc = subprocess.run(
        [str(ROOT / "node_modules/.bin/opencode"), "run", f"Hello? {marker}"],  # its `model`
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "OpenCode found the gateway." in proc.stdout
    [sent] = [r for r in proxy.chat_requests(marker) if TITLE_PROMPT not in r.raw_body.decode()]
    assert sent.body["model"] == MODEL
    assert sent.body["max_tokens"] == OUTPUT  # the limit the config took from /v1/models
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"  # {env:GATEWAY_KEY}


AIDER_ENV = ROOT / ".venv" / "clients" / "aider"
UNKNOWN_MODEL_WARNING = "Unknown context window size and costs"


def aider(
    config: Path, home: Path, workdir: Path, message: str
) -> subprocess.CompletedProcess[str]:
    """`aider --message MESSAGE` in the shell the config set up, non-interactive."""
    if not (AIDER_ENV / ".installed").is_file():
        pytest.skip(
            f"aider is not installed in {AIDER_ENV.relative_to(ROOT)}: scripts/install makes it "
            "from tests/clients/envs/aider.txt (it could not, here)"
        )
    command = [
        str(AIDER_ENV / "bin" / "aider"), "--message", message,
        "--yes-always", "--no-git", "--no-check-update", "--no-show-release-notes",
        "--analytics-disable", "--no-pretty", "--no-fancy-input",
    ]  # fmt: skip
    return subprocess.run(
        ["bash", "-c", '. "$0" && exec "$@"', str(config), *command],
        cwd=workdir,
        env=client_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_aider_with_its_config(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, tmp_path: Path
) -> None:
    """aider knows the model's context window and costs (no warning), and talks to the gateway."""
    fake_upstream.script(marker, fu.text("Aider found the gateway."))
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir(parents=True)
    config = tmp_path / "aider.sh"
    config.write_text(printed("aider", proxy.url))
    proc = aider(config, home, workdir, f"Hello? {marker}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Aider found the gateway." in proc.stdout
    assert UNKNOWN_MODEL_WARNING not in output
    [sent] = proxy.chat_requests(marker)
    assert sent.body["model"] == MODEL
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


def test_aider_without_the_metadata_warns(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, tmp_path: Path
) -> None:
    """What the metadata file is for: the same config without it, and aider warns."""
    fake_upstream.script(marker, fu.text("Aider without metadata."))
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir(parents=True)
    config = tmp_path / "aider.sh"
    text = printed("aider", proxy.url)
    config.write_text(re.sub(r"(?m)^export AIDER_MODEL_METADATA_FILE=.*$", "", text))
    proc = aider(config, home, workdir, f"Hello? {marker}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert UNKNOWN_MODEL_WARNING in proc.stdout + proc.stderr


CODEX = ROOT / "node_modules" / ".bin" / "codex"


def test_codex_with_its_config(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, tmp_path: Path
) -> None:
    """`codex exec` with the printed ~/.codex/config.toml."""
    if not CODEX.exists():
        pytest.fail("Codex CLI is not installed: run scripts/install (npm devDependencies)")
    fake_upstream.script(marker, fu.text("Codex found the gateway."))
    home, workdir = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    workdir.mkdir()
    (home / ".codex" / "config.toml").write_text(printed("codex", proxy.url))
    command = [
        str(CODEX), "exec", "--json", "--skip-git-repo-check",
        # the test's: no retries, no update check, no analytics
        "-c", "model_providers.opencode-openai.request_max_retries=0",
        "-c", "model_providers.opencode-openai.stream_max_retries=0",
        "-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false",
        f"Say hello {marker}",
    ]  # fmt: skip
    proc = subprocess.run(
        command,
        cwd=workdir,
        env=client_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    messages = [
        e["item"]["text"]
        for e in events
        if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"
    ]
    assert messages == ["Codex found the gateway."]
    [sent] = proxy.requests(marker, path="/v1/responses")
    assert sent.body["model"] == MODEL
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


def claude_binary() -> Path | None:
    for candidate in (
        ROOT / "node_modules/@anthropic-ai/claude-code-linux-x64/claude",
        ROOT / "node_modules/@anthropic-ai/claude-code/bin/claude.exe",
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_claude_code_with_its_environment(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, tmp_path: Path
) -> None:
    """`claude -p` in the shell the printed environment set up (no --model: its own choice)."""
    claude = claude_binary()
    if claude is None:
        pytest.fail("Claude Code is not installed: run scripts/install (npm devDependencies)")
    fake_upstream.script(marker, fu.text("Claude Code found the gateway."))
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir(parents=True)
    config = tmp_path / "claude.sh"
    config.write_text(printed("claude-code", proxy.url))
    command = [
        "bash", "-c", '. "$0" && exec "$@"', str(config),
        str(claude), "-p", f"Say hello {marker}", "--output-format", "json",
    ]  # fmt: skip
    proc = subprocess.run(
        command,
        cwd=workdir,
        env=client_env(home, CLAUDE_CONFIG_DIR=str(home / ".claude"), DISABLE_AUTOUPDATER="1"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert result["is_error"] is False and result["result"] == "Claude Code found the gateway."
    sent = proxy.requests(marker, path="/v1/messages")
    assert sent and all(r.body["model"] == MODEL for r in sent)
    assert sent[0].headers["authorization"] == f"Bearer {API_KEY}"
