"""The README is interface too: its --help block and configuration table match the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def help_text() -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_PROXY_", "OPENCODE_", "XDG_"))
    }
    env.update(HOME="/home/you", COLUMNS="80")
    return subprocess.run(
        [sys.executable, "-m", "opencode_openai.cli.main", "server-openai", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout


def test_help_block_matches_the_cli() -> None:
    block = README.split("<summary><code>opencode-openai server-openai --help</code></summary>", 1)[
        1
    ]
    block = block.split("```text\n", 1)[1].split("```", 1)[0]
    assert block == help_text()


def test_every_flag_and_variable_is_in_the_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1].split("\n### ", 1)[0]
    text = help_text()
    flags = set(re.findall(r"(--[a-z][a-z0-9-]+)", text)) - {"--help"}
    variables = set(re.findall(r"\b((?:OPENAI_PROXY|OPENCODE)_[A-Z_]+)", text))
    missing = sorted(name for name in flags | variables if f"`{name}" not in table)
    assert not missing, f"not in the README's configuration table: {missing}"
