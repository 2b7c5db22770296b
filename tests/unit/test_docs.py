"""The documentation is interface too: what it shows must be what the code does.

- docs/configuration.md: its `--help` block is the CLI's output, and its settings table names
  every flag and environment variable of that output;
- docs/reference/request-fields.md: its tables list exactly the spec's request and message
  fields, in the spec's order, each under the word its spec description starts with;
- docs/deployment.md: its copies of deploy/ files are exact;
- README.md: what it is and the two commands come first, it stays short, its links resolve;
- the site builds with `mkdocs build --strict`, broken links and anchors failing it.

The client pages' snippets are run by tests/clients/test_docs_snippets.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
HELP_MARKER = "<!-- generated: opencode-openai server-openai --help -->"

_FENCE = re.compile(r"^(`{3,})(\S*)\s*$")
_MARKER = re.compile(r"^<!-- ([a-z]+): (.+?) -->\s*$")


@dataclass(frozen=True)
class Block:
    """A fenced code block; `kind` and `name` come from an HTML comment on the line before."""

    path: Path
    line: int
    lang: str
    code: str
    kind: str | None = None
    name: str | None = None


def code_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file (a marker inside another fence is not a marker)."""
    blocks: list[Block] = []
    lines = path.read_text().splitlines(keepends=True)
    marker: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            found = _MARKER.match(lines[i])
            marker = (found.group(1), found.group(2)) if found else None
            i += 1
            continue
        ticks, lang, start = opening.group(1), opening.group(2), i
        i += 1
        body: list[str] = []
        while i < len(lines) and not re.match(rf"^{ticks}`*\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        kind, name = marker or (None, None)
        blocks.append(Block(path, start + 1, lang, "".join(body), kind, name))
        marker = None
        i += 1
    return blocks


def help_text() -> str:
    """`server-openai --help` as the docs show it: no settings from the environment."""
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


def section(path: Path, heading: str) -> str:
    """The text under a `## heading`, up to the next heading of that level."""
    text = path.read_text()
    assert f"\n{heading}\n" in text, f"{path.name} has no heading {heading!r}"
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The cells of the body rows of the first Markdown table in `text` (header, rule dropped)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows: list[str] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


# --- configuration -------------------------------------------------------------------------


def test_help_block_is_the_clis_output() -> None:
    page = DOCS / "configuration.md"
    text = page.read_text()
    assert HELP_MARKER in text, f"{page.name} lost its marker {HELP_MARKER}"
    [block] = [
        b
        for b in code_blocks(page)
        if (b.kind, b.name) == ("generated", "opencode-openai server-openai --help")
    ]
    expected = help_text()
    assert block.code == expected, (
        f"docs/configuration.md's --help block (line {block.line}) is not the CLI's output; "
        f"paste this in its place:\n{expected}"
    )


def test_every_flag_and_variable_is_in_the_settings_table() -> None:
    table = section(DOCS / "configuration.md", "## Flags and environment variables")
    text = help_text()
    flags = set(re.findall(r"(--[a-z][a-z0-9-]+)", text)) - {"--help"}
    variables = set(re.findall(r"\b((?:OPENAI_PROXY|OPENCODE)_[A-Z_]+)", text))
    assert flags and variables
    missing = sorted(name for name in flags | variables if f"`{name}" not in table)
    assert not missing, f"not in docs/configuration.md's settings table: {missing}"


# --- request fields --------------------------------------------------------------------------


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())
    return spec


def _word(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    """Honoured, Forwarded, Ignored or Not supported: how the field's description starts."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    found = re.match(r"(Honoured|Forwarded|Ignored|Not supported)\b", schema.get("description", ""))
    assert found, f"a spec description that says none of the four words: {schema}"
    return found.group(1)


def _documented(heading: str) -> list[tuple[str, str]]:
    rows = table_rows(section(DOCS / "reference" / "request-fields.md", heading))
    return [(row[0].strip("`"), row[1]) for row in rows]


def test_request_field_table_is_the_specs() -> None:
    schemas = _spec()["components"]["schemas"]
    spec = [
        (name, _word(schema, schemas))
        for name, schema in schemas["CreateChatCompletionRequest"]["properties"].items()
    ]
    assert _documented("## The request") == spec


def test_message_field_table_is_the_specs() -> None:
    schemas = _spec()["components"]["schemas"]
    fields: dict[str, str] = {}  # each field of any role's message, in the spec's order
    for branch in schemas["ChatCompletionRequestMessage"]["oneOf"]:
        role_schema = schemas[branch["$ref"].rsplit("/", 1)[1]]
        for name, schema in role_schema["properties"].items():
            fields.setdefault(name, _word(schema, schemas) if name != "role" else "Honoured")
    assert _documented("## Messages") == list(fields.items())


# --- deployment ----------------------------------------------------------------------------


def test_deployment_page_shows_the_deploy_files_exactly() -> None:
    copies = [b for b in code_blocks(DOCS / "deployment.md") if b.kind == "file"]
    assert {b.name for b in copies} >= {
        "deploy/nginx/opencode-openai.conf",
        "deploy/nginx/replicas.conf",
        "deploy/systemd/opencode-openai.service",
        "deploy/systemd/opencode-openai.env.example",
    }
    for block in copies:
        assert block.name is not None
        assert block.code == (ROOT / block.name).read_text(), (
            f"docs/deployment.md line {block.line} differs from {block.name}"
        )


# --- README --------------------------------------------------------------------------------


def test_readme_says_what_it_is_then_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the manual belongs in docs/"
    assert lines[0] == "# opencode-openai"
    intro = " ".join(lines[2 : lines.index("", 2)])  # the first paragraph says what it is
    for route in ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/models"):
        assert f"`{route}`" in intro, route
    top = "\n".join(lines[:25])
    assert "## The two commands" in top
    assert re.search(r"^scripts/serve\s+#", top, re.MULTILINE)
    assert re.search(r"^scripts/test\s+#", top, re.MULTILINE)


def test_readme_links_resolve() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [link.split("#", 1)[0] for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links into docs/"
    missing = sorted(link for link in local if not (ROOT / link).exists())
    assert not missing, f"README.md links to files that do not exist: {missing}"


# --- the site ------------------------------------------------------------------------------


def test_site_builds_strictly(tmp_path: Path) -> None:
    """Without --quiet: MkDocs 1.6 hides warnings under --quiet, and --strict then passes them."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("mkdocs")),
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert result.returncode == 0 and not warnings, result.stderr
