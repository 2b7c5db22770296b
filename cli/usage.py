"""`opencode-openai usage --since 1d [--log FILE]`: the usage log summed up by key and model.

The log is the gateway's `--usage-log` (JSON lines, core/usage.py): by default the one the
environment or `--config FILE` names, read through the same settings as the server's.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opencode_openai.core.errors import SettingsError
from opencode_openai.core.settings import GatewayConfig
from opencode_openai.core.usage import UsageRow, parse_since, summarise

__all__ = ["add_parser", "run", "table"]

_COLUMNS = (
    "key",
    "model",
    "requests",
    "errors",
    "prompt",
    "completion",
    "cached",
    "reasoning",
    "ttft ms",
    "duration ms",
)


def add_parser(commands: Any) -> None:
    """The `usage` subcommand, on the CLI's subparsers."""
    parser = commands.add_parser(
        "usage",
        help="sum up the usage log by key and model",
        description="Sum up the gateway's usage log (--usage-log) by key and model: requests, "
        "errors (status 400 and above), tokens, and mean times.",
    )
    parser.add_argument(
        "--since",
        default="1d",
        help="from how long ago (30m, 12h, 1d, 2w) or from a date (2026-12-01) (default: 1d)",
    )
    parser.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        help="the usage log (default: the usage-log setting: OPENCODE_OPENAI_USAGE_LOG or "
        "--config's file)",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="the gateway's config file")


def table(rows: list[UsageRow]) -> str:
    """The rows as a plain text table, numbers right-aligned."""

    def cells(row: UsageRow) -> list[str]:
        ttft = row.mean_ttft_ms
        return [
            row.key,
            row.model,
            *(
                str(n)
                for n in (
                    row.requests,
                    row.errors,
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.cached_tokens,
                    row.reasoning_tokens,
                )
            ),
            "-" if ttft is None else f"{ttft:.0f}",
            f"{row.mean_duration_ms:.0f}",
        ]

    grid = [list(_COLUMNS), *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in grid
    )


def _log_path(args: argparse.Namespace) -> Path | None:
    if args.log is not None:
        return Path(args.log)
    given = {} if args.config is None else {"config_file": args.config}
    return GatewayConfig.from_sources(given).usage_log


def run(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since, datetime.now(UTC))
        path = _log_path(args)
    except (ValueError, SettingsError) as exc:
        print(f"opencode-openai: {exc}", file=sys.stderr)
        return 2
    if path is None:
        print(
            "opencode-openai: no usage log: pass --log FILE, or set usage-log "
            "(--usage-log, OPENCODE_OPENAI_USAGE_LOG or the config file)",
            file=sys.stderr,
        )
        return 2
    try:
        with path.open(encoding="utf-8") as lines:
            rows = summarise(lines, since)
    except OSError as exc:
        print(f"opencode-openai: cannot read the usage log {path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"Usage since {since.isoformat(timespec='seconds')} ({path}):")
    print(table(rows) if rows else "no requests")
    return 0
