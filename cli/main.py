"""`opencode-openai server-openai`: flags and env -> GatewayConfig -> uvicorn.

Every flag has an environment variable; the flag wins. Cross-flag rules (no key beyond loopback,
--no-auth only on loopback) are checked before anything starts, and refused with exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from opencode_openai.backend import OpenCodeBackend
from opencode_openai.core.settings import GatewayConfig, Secret, default_state_dir, is_loopback

__all__ = ["build_parser", "config_from_args", "main"]

EXIT_USAGE = 2


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opencode-openai",
        description="An OpenAI-compatible API for every model an OpenCode server can reach.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "server-openai",
        help="serve the OpenAI API (/v1/chat/completions, /v1/models)",
        description="Serve the OpenAI API in front of OpenCode. Every option also reads the "
        "environment variable named in its help; the option wins.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    env = os.environ.get
    serve.add_argument(
        "--host",
        default=env("OPENAI_PROXY_HOST", "127.0.0.1"),
        help="address to listen on [OPENAI_PROXY_HOST]",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=env("OPENAI_PROXY_PORT", "4040"),
        help="port to listen on [OPENAI_PROXY_PORT]",
    )
    serve.add_argument(
        "--api-key",
        "--key",
        dest="api_keys",
        action="append",
        metavar="KEY",
        help="API key clients must send as a bearer token; repeat for several "
        "[OPENAI_PROXY_API_KEY]; without one a random key is generated and printed",
    )
    serve.add_argument(
        "--api-key-file",
        type=Path,
        default=env("OPENAI_PROXY_API_KEY_FILE"),
        metavar="FILE",
        help="file with accepted API keys, one per line ('#' comments) [OPENAI_PROXY_API_KEY_FILE]",
    )
    serve.add_argument(
        "--no-auth", action="store_true", help="accept requests without a key (loopback hosts only)"
    )
    serve.add_argument(
        "--timeout",
        type=int,
        metavar="MS",
        default=env("OPENAI_PROXY_TIMEOUT", "60000"),
        help="longest time a request may take, in ms [OPENAI_PROXY_TIMEOUT]",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=env("OPENAI_PROXY_MAX_BODY_BYTES", str(32 * 1024 * 1024)),
        help="largest accepted request body [OPENAI_PROXY_MAX_BODY_BYTES]",
    )
    serve.add_argument(
        "--max-concurrent-turns",
        type=int,
        default=env("OPENCODE_OPENAI_MAX_CONCURRENT_TURNS", "64"),
        help="chat requests running at once; more wait in a queue "
        "[OPENCODE_OPENAI_MAX_CONCURRENT_TURNS]",
    )
    serve.add_argument(
        "--max-queued-turns",
        type=int,
        default=env("OPENCODE_OPENAI_MAX_QUEUED_TURNS", "256"),
        help="chat requests waiting for a slot; beyond, 429 with Retry-After "
        "[OPENCODE_OPENAI_MAX_QUEUED_TURNS]",
    )
    serve.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        metavar="ORIGIN",
        help="allow browser requests from this origin (repeat for several; CORS "
        "is off by default) [OPENCODE_OPENAI_CORS_ORIGINS, comma-separated]",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        metavar="SECONDS",
        default=env("OPENCODE_OPENAI_SHUTDOWN_GRACE", "10"),
        help="on SIGTERM, how long running requests may take to finish "
        "[OPENCODE_OPENAI_SHUTDOWN_GRACE]",
    )
    serve.add_argument(
        "--opencode-workers",
        type=int,
        metavar="N",
        default=env("OPENCODE_OPENAI_WORKERS", "1"),
        help="OpenCode processes to start and balance across (embedded mode; one "
        "per core) [OPENCODE_OPENAI_WORKERS]",
    )
    serve.add_argument(
        "--recycle-after-turns",
        type=int,
        metavar="N",
        default=env("OPENCODE_OPENAI_RECYCLE_TURNS", "5000"),
        help="drain and restart an OpenCode process after N turns; 0: never "
        "[OPENCODE_OPENAI_RECYCLE_TURNS]",
    )
    serve.add_argument(
        "--recycle-rss-mb",
        type=int,
        metavar="MB",
        default=env("OPENCODE_OPENAI_RECYCLE_RSS_MB", "1536"),
        help="drain and restart an OpenCode process grown past this RSS; 0: never "
        "[OPENCODE_OPENAI_RECYCLE_RSS_MB]",
    )
    serve.add_argument(
        "--opencode-url",
        default=env("OPENCODE_URL"),
        metavar="URL",
        help="attach to this running OpenCode server instead of starting one; its "
        "password is read from OPENCODE_SERVER_PASSWORD [OPENCODE_URL]",
    )
    serve.add_argument(
        "--opencode-bin",
        default=env("OPENCODE_BIN"),
        metavar="PATH",
        help="opencode binary to start (default: the project's pinned install, "
        "then PATH) [OPENCODE_BIN]",
    )
    serve.add_argument(
        "--opencode-config",
        type=Path,
        default=env("OPENCODE_OPENAI_CONFIG"),
        metavar="FILE",
        help="extra OpenCode config (JSON) merged into the generated one, e.g. a "
        "provider for a local Ollama or vLLM [OPENCODE_OPENAI_CONFIG]",
    )
    serve.add_argument(
        "--isolated",
        action="store_true",
        default=_env_flag("OPENCODE_OPENAI_ISOLATED"),
        help="give OpenCode a home of its own under the state dir: none of your "
        "OpenCode config, auth or provider keys [OPENCODE_OPENAI_ISOLATED=1]",
    )
    serve.add_argument(
        "--state-dir",
        type=Path,
        default=Path(env("OPENCODE_OPENAI_STATE_DIR") or default_state_dir()),
        help="where the gateway keeps its OpenCode workspace [OPENCODE_OPENAI_STATE_DIR]",
    )
    serve.add_argument(
        "--log-level",
        default=env("OPENCODE_OPENAI_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level [OPENCODE_OPENAI_LOG_LEVEL]",
    )
    return parser


class UsageError(Exception):
    """A flag combination refused before start-up (exit code 2)."""


def config_from_args(args: argparse.Namespace) -> tuple[GatewayConfig, bool]:
    """The config, and whether its key was generated (so it must be printed)."""
    keys = list(args.api_keys or [])
    if not keys and os.environ.get("OPENAI_PROXY_API_KEY"):
        keys = [os.environ["OPENAI_PROXY_API_KEY"]]
    if args.api_key_file is not None:
        keys += _read_key_file(args.api_key_file)
    loopback = is_loopback(args.host)
    if args.no_auth and not loopback:
        raise UsageError(f"--no-auth is only accepted on a loopback host, not {args.host}")
    if not keys and not args.no_auth and not loopback:
        raise UsageError(
            f"refusing to listen on {args.host} without an API key: pass --api-key or set "
            "OPENAI_PROXY_API_KEY (a generated key is only offered on loopback)"
        )
    generated = not keys and not args.no_auth
    if generated:
        keys = ["sk-oc-" + secrets.token_urlsafe(24)]
    if args.timeout <= 0:
        raise UsageError("--timeout / OPENAI_PROXY_TIMEOUT must be a positive number of ms")
    if args.opencode_workers < 1:
        raise UsageError("--opencode-workers must be at least 1")
    if args.opencode_workers > 1 and args.opencode_url:
        raise UsageError("--opencode-workers > 1 needs embedded mode: attach mode has one server")
    for name in ("max_concurrent_turns", "max_queued_turns"):
        if getattr(args, name) < (1 if name == "max_concurrent_turns" else 0):
            raise UsageError(f"--{name.replace('_', '-')} is too small")
    origins = args.cors_origins or [
        o.strip()
        for o in os.environ.get("OPENCODE_OPENAI_CORS_ORIGINS", "").split(",")
        if o.strip()
    ]
    password = os.environ.get("OPENCODE_SERVER_PASSWORD")
    config = GatewayConfig(
        host=args.host,
        port=args.port,
        api_keys=tuple(Secret(k) for k in keys),
        auth=not args.no_auth,
        timeout_s=args.timeout / 1000,
        max_body_bytes=args.max_body_bytes,
        opencode_url=args.opencode_url,
        opencode_password=Secret(password) if password else None,
        opencode_bin=args.opencode_bin,
        opencode_config=args.opencode_config,
        isolated=args.isolated,
        state_dir=args.state_dir,
        max_concurrent_turns=args.max_concurrent_turns,
        max_queued_turns=args.max_queued_turns,
        cors_origins=tuple(origins),
        shutdown_grace_s=args.shutdown_grace,
        opencode_workers=args.opencode_workers,
        recycle_after_turns=args.recycle_after_turns,
        recycle_rss_mb=args.recycle_rss_mb,
    )
    return config, generated


def _read_key_file(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the API key file {path}: {exc.strerror}") from exc
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise UsageError(f"the API key file {path} holds no key")
    return keys


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
    key = config.api_keys[0].reveal()
    return f"key {key[:4]}…{key[-2:]}" if len(key) > 8 else "key (given)"


def serve(config: GatewayConfig, generated: bool) -> int:
    from opencode_openai.app import create_app

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

    app = create_app(config, on_ready=ready)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=logging.getLevelName(logging.getLogger().level).lower(),
            timeout_graceful_shutdown=config.shutdown_grace_s,
            access_log=False,
        )
    )
    # uvicorn re-raises the stop signal after its graceful shutdown, through the handler it
    # found installed; a no-op there makes a clean SIGTERM/SIGINT stop exit 0, not -15 / 130.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config, generated = config_from_args(args)
    except UsageError as exc:
        print(f"opencode-openai: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return serve(config, generated)


if __name__ == "__main__":
    sys.exit(main())
