"""`opencode-openai server-openai`: flags and env -> GatewayConfig -> uvicorn.

(`opencode-openai client-config CLIENT` prints a client's configuration: cli/client_config.py.)

The flags are built from the settings table (core/settings.py): each has its environment
variables, and the flag wins. Refused settings (no key beyond loopback, --no-auth only on
loopback, ...) stop the command before anything starts, with exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

import uvicorn

from opencode_openai.backend import OpenCodeBackend
from opencode_openai.cli import client_config, keys, usage
from opencode_openai.core.settings import GatewayConfig, Secret, Setting, SettingsError, settings

__all__ = ["build_parser", "config_from_args", "main", "rereader"]

EXIT_USAGE = 2


class _Extend(argparse.Action):
    """A repeatable flag whose parsed values (tuples) are joined in order."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, (*getattr(namespace, self.dest, ()), *values))


def _help(setting: Setting) -> str:
    shown = f" (default: {setting.shown_default})" if setting.shown_default is not None else ""
    return f"{setting.help} [{', '.join(setting.env)}]{shown}".replace("%", "%%")


def _add(parser: argparse.ArgumentParser, setting: Setting) -> None:
    common: dict[str, Any] = {"dest": setting.name, "default": argparse.SUPPRESS}
    if setting.kind == "switch":
        parser.add_argument(
            *setting.flags, action="store_const", const=setting.switched, help=_help(setting),
            **common,
        )  # fmt: skip
        return
    parser.add_argument(
        *setting.flags,
        type=setting.parse,
        metavar=setting.metavar,
        action=_Extend if setting.kind == "repeat" else "store",
        help=_help(setting),
        **common,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opencode-openai",
        description="OpenAI's and Anthropic's APIs for every model an OpenCode server can reach.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "server-openai",
        help="serve the API (/v1/chat/completions, /v1/responses, /v1/messages, /v1/models)",
        description="Serve OpenAI's and Anthropic's APIs in front of OpenCode. Every option also "
        "reads the environment variables named in its help; the option wins.",
    )
    for setting in settings():
        if setting.flags:
            _add(serve, setting)
    client_config.add_parser(commands)
    keys.add_parser(commands)
    usage.add_parser(commands)
    return parser


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {name: value for name, value in vars(args).items() if name != "command"}


def config_from_args(args: argparse.Namespace) -> tuple[GatewayConfig, bool]:
    """The config, and whether its key was generated (so it must be printed)."""
    config = GatewayConfig.from_sources(_given(args))
    if config.auth and not config.accepted_keys:  # on loopback: a key of its own, printed once
        key = Secret("sk-oc-" + secrets.token_urlsafe(24))
        return dataclasses.replace(config, api_keys=(key,)), True
    return config, False


def rereader(
    args: argparse.Namespace, config: GatewayConfig, generated: bool
) -> Callable[[], GatewayConfig]:
    """How SIGHUP reads the settings again: the same flags, the environment and the config
    file as it is now. A generated key stays the key it was."""

    def reread() -> GatewayConfig:
        fresh = GatewayConfig.from_sources(_given(args))
        return dataclasses.replace(fresh, api_keys=config.api_keys) if generated else fresh

    return reread


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    return sock


def _base_url(config: GatewayConfig) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{config.port}/v1"


def _announce_key(config: GatewayConfig) -> None:
    key = config.api_keys[0].reveal()
    print(f"Generated API key (shown once): {key}", flush=True)
    print(
        f"  curl {_base_url(config)}/models -H 'Authorization: Bearer {key}'",
        flush=True,
    )


def _key_label(config: GatewayConfig, generated: bool) -> str:
    if not config.auth:
        return "no auth"
    if generated:
        return f"key {config.api_keys[0].reveal()}"
    if not config.api_keys:
        return f"{len(config.keys)} named keys"
    key = config.api_keys[0].reveal()
    return f"key {key[:4]}…{key[-2:]}" if len(key) > 8 else "key (given)"


def serve(
    config: GatewayConfig, generated: bool, reread: Callable[[], GatewayConfig] | None = None
) -> int:
    from opencode_openai.app import create_app
    from opencode_openai.app.state_lock import StateDirInUse, check_state_dir

    try:
        check_state_dir(config.state_dir)  # held for good by the app, once it starts
    except StateDirInUse as exc:
        print(f"opencode-openai: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sock = _bind(config.host, config.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"opencode-openai: port {config.port} on {config.host} is already in use; "
                "stop the other server or pick another with --port / OPENAI_PROXY_PORT",
                file=sys.stderr,
            )
        else:
            print(
                f"opencode-openai: cannot listen on {config.host}:{config.port}: {exc.strerror}",
                file=sys.stderr,
            )
        return 1
    if generated:
        _announce_key(config)

    def ready(backend: OpenCodeBackend) -> None:
        print(
            f"opencode-openai ready: {_base_url(config)} ({_key_label(config, generated)}), "
            f"{len(backend.catalog.models)} models via OpenCode ({config.mode})",
            flush=True,
        )

    failed: list[int] = []

    def give_up(backend: OpenCodeBackend) -> None:
        """OpenCode could not be started: say why and stop (exit 2 for a refused setting)."""
        print(f"opencode-openai: {backend.errors()}", file=sys.stderr, flush=True)
        failed.append(EXIT_USAGE if backend.misconfigured else 1)
        server.should_exit = True

    app = create_app(config, on_ready=ready, on_failed=give_up, reread=reread)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=logging.getLevelName(logging.getLogger().level).lower(),
            # uvicorn's annotation says int; it waits with asyncio.wait_for, which takes any
            # number of seconds, and --shutdown-grace may be a fraction of one.
            timeout_graceful_shutdown=cast(int, config.shutdown_grace_s),
            access_log=False,
        )
    )
    # uvicorn re-raises the stop signal after its graceful shutdown, through the handler it
    # found installed; a no-op there makes a clean SIGTERM/SIGINT stop exit 0, not -15 / 130.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    return failed[0] if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "client-config":
        return client_config.run(args)
    if args.command == "keys":
        return keys.run(args)
    if args.command == "usage":
        return usage.run(args)
    try:
        config, generated = config_from_args(args)
    except SettingsError as exc:
        print(f"opencode-openai: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return serve(config, generated, rereader(args, config, generated))


if __name__ == "__main__":
    sys.exit(main())
