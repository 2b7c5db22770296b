"""`opencode-openai client-config CLIENT`: a working configuration of CLIENT for a gateway.

It asks the running gateway (`--url`) for `GET /v1/models`, with the key from the environment
variable `--key-env` names, to learn the model's id and what it can do (context window, output
limit, inputs, tools); a config that carries model limits takes them from there. The model is
`--model`, or else the one the gateway's `opencode/default` stands for. When the gateway does
not answer, the config names `--model` (or `opencode/default`) without limits, and a note on
stderr says so.

Keys are never printed: every config refers to the variable that holds the key, in the
client's own way (an `env_key`, `{env:…}`, `${{ secrets.… }}`, or `"$VAR"` in a shell line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CLIENTS", "GatewayModel", "Target", "add_parser", "render", "run"]

DEFAULT_URL = "http://127.0.0.1:4040"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_MODEL = "opencode/default"
#: The provider id the configs give the gateway (OpenCode's is short: it prefixes model ids).
PROVIDER_ID = "opencode-openai"
OPENCODE_PROVIDER = "gw"
#: What Claude Code 2.1.332 asks for when no model is set (for `--model-alias`).
CLAUDE_CODE_DEFAULT_IDS = ("claude-opus-5-5",)
EXIT_USAGE = 2


@dataclass(frozen=True)
class GatewayModel:
    """One model as `GET /v1/models` describes it (limits unknown when the gateway did not
    answer)."""

    id: str
    name: str
    context: int | None = None
    output: int | None = None
    inputs: tuple[str, ...] = ("text",)
    tools: bool = True
    vision: bool = False
    reasoning: bool = False

    @classmethod
    def from_listing(cls, entry: dict[str, Any]) -> GatewayModel:
        capabilities = entry.get("capabilities") or {}
        return cls(
            id=str(entry["id"]),
            name=str(entry.get("name") or entry["id"]),
            context=_count(entry.get("context_length")),
            output=_count(entry.get("max_output_tokens")),
            inputs=tuple(str(m) for m in entry.get("input_modalities") or ("text",)),
            tools=bool(capabilities.get("tools", True)),
            vision=bool(capabilities.get("vision", False)),
            reasoning=bool(capabilities.get("reasoning", False)),
        )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True)
class Target:
    """What a config points at: the gateway, the key's variable, the model (first of
    `models`, which holds more with `--all-models`)."""

    url: str  # the gateway's root, without /v1
    key_env: str
    models: tuple[GatewayModel, ...]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def model(self) -> GatewayModel:
        return self.models[0]


# --- the configs ---------------------------------------------------------------------------


def _sh(value: str) -> str:
    return shlex.quote(value)


def _key_line(target: Target, variable: str) -> str:
    """The shell line that hands the key to `variable` (none if it already holds it)."""
    if target.key_env == variable:
        return f"# {variable}: the gateway's key (set it in your environment; it is not printed)"
    return f'export {variable}="${{{target.key_env}}}"'


def _openai(target: Target) -> str:
    model = target.model
    return "\n".join(
        [
            f"# The openai SDKs (Python, Node) and other OpenAI clients on the opencode-openai "
            f"gateway at {target.base_url}.",
            '# Run in your shell (or: eval "$(opencode-openai client-config openai)"); the '
            "SDKs read these variables.",
            f"export OPENAI_BASE_URL={_sh(target.base_url)}",
            "# older clients (LangChain's legacy classes, aider, litellm) read this name:",
            f"export OPENAI_API_BASE={_sh(target.base_url)}",
            _key_line(target, "OPENAI_API_KEY"),
            f"# model: {model.id} (pass it as the request's model; GET /v1/models lists them all)",
            "",
        ]
    )


def _claude_code(target: Target) -> str:
    model = target.model.id
    aliases = " ".join(
        f"--model-alias {_sh(f'{name}={model}')}" for name in CLAUDE_CODE_DEFAULT_IDS
    )
    lines = [
        f"# Claude Code on the opencode-openai gateway at {target.url} (its /v1/messages).",
        '# Run in your shell (or: eval "$(opencode-openai client-config claude-code)"), '
        "then start claude.",
        f"export ANTHROPIC_BASE_URL={_sh(target.url)}",
        f'export ANTHROPIC_AUTH_TOKEN="${{{target.key_env}}}"   # sent as Authorization: Bearer',
        f"export ANTHROPIC_MODEL={_sh(model)}",
        "# the models Claude Code picks by itself (opus, sonnet, haiku, sub-agents):",
        f"export ANTHROPIC_DEFAULT_OPUS_MODEL={_sh(model)}",
        f"export ANTHROPIC_DEFAULT_SONNET_MODEL={_sh(model)}",
        f"export ANTHROPIC_DEFAULT_HAIKU_MODEL={_sh(model)}",
        f"export CLAUDE_CODE_SUBAGENT_MODEL={_sh(model)}",
        "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1   # no telemetry, no update checks",
        "# Or keep Claude Code's own claude-... ids and give them a meaning on the gateway:",
        f"#   opencode-openai server-openai {aliases}",
        "",
    ]
    return "\n".join(lines)


def _toml(value: str) -> str:
    return json.dumps(value)  # a TOML basic string: the same escapes as JSON's


def _codex(target: Target) -> str:
    model = target.model
    lines = [
        f"# ~/.codex/config.toml (or $CODEX_HOME/config.toml): Codex CLI on the opencode-openai "
        f"gateway at {target.base_url} (its /v1/responses).",
        f"# Codex reads the key from ${target.key_env} (env_key); it is not printed here.",
        f"model = {_toml(model.id)}",
        f'model_provider = "{PROVIDER_ID}"',
    ]
    if model.context:
        lines.append(f"model_context_window = {model.context}")
    lines += [
        "",
        f"[model_providers.{PROVIDER_ID}]",
        'name = "opencode-openai gateway"',
        f"base_url = {_toml(target.base_url)}",
        f"env_key = {_toml(target.key_env)}",
        'wire_api = "responses"',
        "",
    ]
    return "\n".join(lines)


def _aider_metadata(target: Target) -> dict[str, Any]:
    """litellm's model metadata, as aider reads it (`--model-metadata-file`)."""
    metadata: dict[str, Any] = {}
    for model in target.models:
        entry: dict[str, Any] = {"litellm_provider": "openai", "mode": "chat"}
        if model.context:
            entry["max_input_tokens"] = model.context
        if model.output:
            entry["max_output_tokens"] = entry["max_tokens"] = model.output
        # The gateway knows no prices: aider shows $0.00 rather than "unknown costs".
        entry["input_cost_per_token"] = entry["output_cost_per_token"] = 0.0
        entry["supports_function_calling"] = model.tools
        entry["supports_vision"] = model.vision
        entry["supports_reasoning"] = model.reasoning
        metadata[f"openai/{model.id}"] = entry
    return metadata


def _aider(target: Target) -> str:
    path = '"${XDG_CONFIG_HOME:-$HOME/.config}/opencode-openai/aider.model.metadata.json"'
    metadata = json.dumps(_aider_metadata(target), indent=2)
    lines = [
        f"# aider on the opencode-openai gateway at {target.base_url}.",
        '# Run in your shell (or: eval "$(opencode-openai client-config aider)"), then start '
        "aider.",
        "# The model's context window, output limit and (unknown, so zero) costs, for aider:",
        'mkdir -p "${XDG_CONFIG_HOME:-$HOME/.config}/opencode-openai"',
        f"cat > {path} <<'EOF'",
        metadata,
        "EOF",
        f"export AIDER_MODEL_METADATA_FILE={path}",
        f"export OPENAI_API_BASE={_sh(target.base_url)}",
        _key_line(target, "OPENAI_API_KEY"),
        f"export AIDER_MODEL={_sh('openai/' + target.model.id)}",
        "",
    ]
    return "\n".join(lines)


def _continue(target: Target) -> str:
    lines = [
        f"# ~/.continue/config.yaml: Continue on the opencode-openai gateway at {target.base_url}.",
        f"# Continue reads the key from its secrets: put {target.key_env}=<the gateway's key> in "
        "~/.continue/.env.",
        'name: "opencode-openai"',
        "version: 1.0.0",
        "schema: v1",
        "models:",
    ]
    for model in target.models:
        flags = (("tool_use", model.tools), ("image_input", model.vision))
        capabilities = [name for name, on in flags if on]
        lines += [
            f"  - name: {json.dumps(f'{model.name} (opencode-openai)')}",
            "    provider: openai",
            f"    model: {json.dumps(model.id)}",
            f"    apiBase: {json.dumps(target.base_url)}",
            f'    apiKey: "${{{{ secrets.{target.key_env} }}}}"',
            "    roles: [chat, edit, apply]",
            f"    capabilities: [{', '.join(capabilities)}]",
        ]
        options = [
            f"      {name}: {value}"
            for name, value in (("contextLength", model.context), ("maxTokens", model.output))
            if value
        ]
        if options:
            lines += ["    defaultCompletionOptions:", *options]
    return "\n".join([*lines, ""])


#: Zed requires a context window (`max_tokens`); this one where the gateway knows none.
ZED_FALLBACK_CONTEXT = 32768


def _zed(target: Target) -> str:
    variable = re.sub(r"[^A-Z0-9]+", "_", PROVIDER_ID.upper()) + "_API_KEY"
    models = []
    for model in target.models:
        entry: dict[str, Any] = {
            "name": model.id,
            "display_name": model.name,
            "max_tokens": model.context or ZED_FALLBACK_CONTEXT,
        }
        if model.output:
            entry["max_output_tokens"] = model.output
        entry["capabilities"] = {
            "tools": model.tools,
            "images": model.vision,
            "parallel_tool_calls": model.tools,
            "prompt_cache_key": False,
        }
        models.append(entry)
    settings = {
        "language_models": {
            "openai_compatible": {
                PROVIDER_ID: {"api_url": target.base_url, "available_models": models}
            }
        },
        "agent": {"default_model": {"provider": PROVIDER_ID, "model": target.model.id}},
    }
    hand_over = (
        f'export {variable}="${{{target.key_env}}}"' if target.key_env != variable else "set it"
    )
    return "\n".join(
        [
            f"// Zed settings.json (merge into ~/.config/zed/settings.json): Zed's agent on the "
            f"opencode-openai gateway at {target.base_url}.",
            f"// Zed reads the key from {variable} (the provider's id, upper-cased): {hand_over} "
            "before starting Zed.",
            json.dumps(settings, indent=2),
            "",
        ]
    )


def _open_webui(target: Target) -> str:
    return "\n".join(
        [
            f"# Open WebUI on the opencode-openai gateway at {target.base_url}: its environment,",
            "# for example: docker run -e OPENAI_API_BASE_URL -e OPENAI_API_KEY -e DEFAULT_MODELS "
            "... ghcr.io/open-webui/open-webui",
            "# (in a container 127.0.0.1 is the container itself: give the host's address, and "
            "start the gateway with --host and a key).",
            f"export OPENAI_API_BASE_URL={_sh(target.base_url)}",
            _key_line(target, "OPENAI_API_KEY"),
            f"export DEFAULT_MODELS={_sh(target.model.id)}",
            "export ENABLE_OLLAMA_API=false",
            "",
        ]
    )


def _opencode(target: Target) -> str:
    models: dict[str, Any] = {}
    for model in target.models:
        entry: dict[str, Any] = {
            "name": model.name,
            "tool_call": model.tools,
            "attachment": model.vision,
            "reasoning": model.reasoning,
            "modalities": {"input": list(model.inputs), "output": ["text"]},
        }
        if model.context and model.output:
            entry["limit"] = {"context": model.context, "output": model.output}
        models[model.id] = entry
    config = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            OPENCODE_PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "opencode-openai gateway",
                "options": {"baseURL": target.base_url, "apiKey": f"{{env:{target.key_env}}}"},
                "models": models,
            }
        },
        "model": f"{OPENCODE_PROVIDER}/{target.model.id}",
        "small_model": f"{OPENCODE_PROVIDER}/{target.model.id}",
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass(frozen=True)
class Client:
    render: Callable[[Target], str]
    #: What the printed text is (for --help and the docs).
    what: str


CLIENTS: dict[str, Client] = {
    "codex": Client(_codex, "Codex CLI: ~/.codex/config.toml with a custom provider"),
    "claude-code": Client(_claude_code, "Claude Code: shell environment (ANTHROPIC_*)"),
    "aider": Client(_aider, "aider: a model metadata file and shell environment"),
    "continue": Client(_continue, "Continue: ~/.continue/config.yaml"),
    "zed": Client(_zed, "Zed: settings.json (language_models.openai_compatible)"),
    "open-webui": Client(_open_webui, "Open WebUI: its environment"),
    "opencode": Client(_opencode, "OpenCode: opencode.json with the gateway as a provider"),
    "openai": Client(_openai, "the openai SDKs: shell environment (OPENAI_BASE_URL)"),
}


def render(client: str, target: Target) -> str:
    return CLIENTS[client].render(target)


# --- the gateway's models ------------------------------------------------------------------


class GatewayUnavailable(Exception):
    """`GET /v1/models` got no usable answer (the message says why)."""


def fetch_models(url: str, key: str | None, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"{url}/v1/models", headers={"Accept": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        reason = "refused the key" if exc.code in (401, 403) else f"answered {exc.code}"
        raise GatewayUnavailable(f"GET {url}/v1/models {reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", exc)
        raise GatewayUnavailable(f"GET {url}/v1/models failed: {why}") from exc
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise GatewayUnavailable(f"GET {url}/v1/models did not answer a model list")
    return [entry for entry in data if isinstance(entry, dict) and "id" in entry]


class UnknownModel(Exception):
    pass


def choose(
    listing: list[dict[str, Any]], model: str | None, *, all_models: bool
) -> tuple[GatewayModel, ...]:
    """The config's models from the gateway's list: the chosen one first."""
    by_id = {str(entry["id"]): entry for entry in listing}
    wanted = model
    if wanted is None:
        default = by_id.get(DEFAULT_MODEL, {})
        wanted = str(default.get("alias_for") or DEFAULT_MODEL)
    if wanted not in by_id:
        raise UnknownModel(wanted)
    chosen = GatewayModel.from_listing(by_id[wanted])
    others = [GatewayModel.from_listing(e) for i, e in by_id.items() if i != wanted]
    return (chosen, *others) if all_models else (chosen,)


# --- the command ---------------------------------------------------------------------------


def _root(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _variable(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an environment variable name")
    return value


def add_parser(commands: Any) -> None:
    """The `client-config` subcommand, on the CLI's subparsers."""
    parser = commands.add_parser(
        "client-config",
        help="print a working configuration of a client for a running gateway",
        description="Print a configuration of CLIENT for the gateway at --url: its URL, a model\n"
        "with its limits (from the gateway's GET /v1/models), and the environment variable\n"
        "that holds the key. The key itself is never printed.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="clients:\n"
        + "\n".join(f"  {name:<12} {client.what}" for name, client in CLIENTS.items()),
    )
    parser.add_argument("client", choices=list(CLIENTS), metavar="CLIENT", help="the client")
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        type=_root,
        help=f"the gateway's address, with or without /v1 (default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--model",
        help="a model id or alias of GET /v1/models (default: the model opencode/default "
        "stands for)",
    )
    parser.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        type=_variable,
        metavar="VAR",
        help="the environment variable that holds the gateway's key; the config refers to it, "
        f"and it is read to ask the gateway for its models (default: {DEFAULT_KEY_ENV})",
    )
    parser.add_argument(
        "--all-models",
        action="store_true",
        help="list every model of the gateway in the configs that hold a model list "
        "(OpenCode, Zed, Continue, aider), the chosen one first",
    )


def run(args: argparse.Namespace, environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    url: str = args.url
    try:
        listing = fetch_models(url, env.get(args.key_env))
    except GatewayUnavailable as exc:
        model = args.model or DEFAULT_MODEL
        print(
            f"opencode-openai: {exc}; the config names {model} without its limits "
            f"(start the gateway, set {args.key_env}, and run this again for them)",
            file=sys.stderr,
        )
        models: tuple[GatewayModel, ...] = (GatewayModel(model, model),)
    else:
        try:
            models = choose(listing, args.model, all_models=args.all_models)
        except UnknownModel as exc:
            known = ", ".join(str(entry["id"]) for entry in listing[:20])
            print(
                f"opencode-openai: the gateway at {url} has no model {exc}; "
                f"GET /v1/models lists: {known}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    sys.stdout.write(render(args.client, Target(url, args.key_env, models)))
    return 0
