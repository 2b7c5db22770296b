"""The config file (`--config FILE`, TOML): the settings table's values, plus keys and aliases.

Each setting is read through its own entry of the settings table (core/settings.py): its file
key is its flag without the dashes (`max-concurrent-turns = 8`), or the key it names
(`[aliases]`, `[[keys]]`); a value goes through the setting's own parse and check, so a file
is checked as a flag is. tomllib knows no positions once a file has parsed, so a refused value
is placed by `line_of`, which finds the line of a key in its table.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opencode_openai.core.errors import SettingsError

if TYPE_CHECKING:
    from opencode_openai.core.settings import Setting

__all__ = ["BadValue", "line_of", "read_config_file"]

#: A place in the file: table names, array indexes, the key (`("keys", 0, "name")`).
Where = Sequence[str | int]


class BadValue(ValueError):
    """A value a setting's reader refuses, and where inside the value it is (`(0, "name")`)."""

    def __init__(self, message: str, where: Where = ()) -> None:
        super().__init__(message)
        self.where = tuple(where)


def read_config_file(path: Path, table: Iterable[Setting]) -> dict[str, Any]:
    """The values `path` gives, by field name; a refused one stops with the file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not a TOML file: {exc}") from exc
    by_key = {setting.file_key: setting for setting in table}
    values: dict[str, Any] = {}
    for key, value in data.items():
        setting = by_key.get(key)
        try:
            if setting is None:
                raise BadValue(_unknown(key, (name for name in by_key if name)))
            values[setting.name] = _value(setting, value)
        except BadValue as exc:
            where = (key, *exc.where)
            line = line_of(text, where)
            raise SettingsError(f"{path}:{line or '?'}: {_dotted(where)}: {exc}") from None
    return values


def _unknown(key: str, known: Iterable[str]) -> str:
    near = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown setting{hint}; expected a flag's name without its dashes"


def _value(setting: Setting, value: Any) -> Any:
    """The field's value from a TOML value, read and checked as the setting says."""
    if setting.read_file is not None:
        read = setting.read_file(value)
    elif setting.kind == "switch":
        if not isinstance(value, bool):
            raise BadValue("expected true or false")
        read = setting.switched if value else not setting.switched
    elif setting.kind == "repeat":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise BadValue(f"expected a list of {setting.metavar or 'strings'}")
        read = tuple(part for item in items for part in _parsed(setting, item))
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        read = _parsed(setting, str(value))
    else:
        raise BadValue(f"expected {setting.metavar or 'a string'}")
    complaint = setting.check(read) if setting.check else None
    if complaint:
        raise BadValue(complaint)
    return read


def _parsed(setting: Setting, text: str) -> Any:
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise BadValue(f"expected {setting.metavar or 'a value'}, not {text!r} ({exc})") from exc


def _dotted(where: Where) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in where)[1:]


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _header(line: str) -> str | None:
    """`[[keys]]` or `[aliases]` for a table header line (spaces dropped), else None."""
    found = _HEADER.match(line)
    if found is None:
        return None
    brackets = found.group(1)
    return f"{brackets}{found.group(2)}{brackets.replace('[', ']')}"


def _section_end(lines: list[str], start: int) -> int:
    return next((n for n in range(start, len(lines)) if _header(lines[n])), len(lines))


def line_of(text: str, where: Where) -> int | None:
    """The 1-based line of the key at `where`, or of the nearest table (or key) it is in.

    `("port",)` is a top-level key, `("aliases", "fast")` a key of table `[aliases]`,
    `("keys", 1, "models")` a key of the second `[[keys]]` table.
    """
    lines = text.splitlines()
    low, high, found = 0, _section_end(lines, 0), None
    parts = list(where)
    while parts:
        name = str(parts.pop(0))
        index = int(parts.pop(0)) if parts and isinstance(parts[0], int) else 0
        wanted = (f"[[{name}]]", f"[{name}]")
        headers = [n for n, line in enumerate(lines) if _header(line) in wanted]
        if index < len(headers):
            low = headers[index] + 1
            high, found = _section_end(lines, low), low
            continue
        key = re.compile(rf"^\s*(?:{re.escape(name)}|[\"']{re.escape(name)}[\"'])\s*=")
        return next((n + 1 for n in range(low, high) if key.match(lines[n])), found)
    return found
