"""The config file (--config, OPENAI_PROXY_CONFIG): settings, [aliases] and [[keys]] read
through the settings table; refusals name the file, the line and what was expected."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opencode_openai.cli.main import build_parser, config_from_args, main
from opencode_openai.core.config_file import line_of
from opencode_openai.core.keys import find_key, hash_key
from opencode_openai.core.settings import GatewayConfig, SettingsError, settings
from tests.unit.test_docs import DOCS, code_blocks

ALICE = "sk-oo-alice-test-key"


@pytest.fixture(autouse=True)
def no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in settings():
        for variable in setting.env:
            monkeypatch.delenv(variable, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(textwrap.dedent(text))
    return path


def parse(*argv: str) -> GatewayConfig:
    return config_from_args(build_parser().parse_args(["server-openai", *argv]))[0]


def refusal(path: Path) -> str:
    with pytest.raises(SettingsError) as caught:
        parse("--config", str(path))
    return str(caught.value)


def test_every_flag_is_a_key_of_the_file_and_keys_are_hashes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        host = "0.0.0.0"
        port = 5050
        timeout = 1500
        isolated = true
        cors-origin = ["https://a.example", "https://b.example"]
        max-tokens-over-limit = "reject"

        [aliases]
        fast = "fake/fake-model"

        [[keys]]
        name = "alice"
        key = "{hash_key(ALICE)}"
        models = ["fast", "fake/*"]
        requests-per-minute = 10
        tokens-per-minute = 1000
        max-concurrent-turns = 2
        expires = 2027-01-31
        """,
    )
    config = parse("--config", str(path))
    assert (config.host, config.port, config.timeout_s, config.isolated) == (
        "0.0.0.0",
        5050,
        1.5,
        True,
    )
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert config.max_tokens_over_limit == "reject"
    assert config.model_aliases == (("fast", "fake/fake-model"),)
    [alice] = config.keys
    assert (alice.name, alice.models) == ("alice", ("fast", "fake/*"))
    assert (alice.requests_per_minute, alice.tokens_per_minute) == (10, 1000)
    assert alice.max_concurrent_turns == 2
    assert alice.expires == datetime(2027, 1, 31, tzinfo=UTC)
    # A file with keys is a key: no generated one, and a host beyond loopback is accepted.
    assert config.api_keys == () and find_key(ALICE, config.accepted_keys) == alice


def test_flags_and_environment_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'port = 5050\nhost = "127.0.0.2"\nlog-level = "debug"\n')
    monkeypatch.setenv("OPENAI_PROXY_CONFIG", str(path))
    monkeypatch.setenv("OPENAI_PROXY_HOST", "127.0.0.3")
    config = parse("--port", "6060")
    assert (config.port, config.host, config.log_level) == (6060, "127.0.0.3", "debug")


def test_every_setting_with_a_flag_has_a_file_key() -> None:
    for setting in settings():
        if setting.flags:
            assert setting.file_key, setting.name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port = 1\nprot = 2\n", "gateway.toml:2: prot: unknown setting (did you mean 'port'?)"),
        ('port = 1\n\nport-x = "a"\nhost = "h"\n', "gateway.toml:3: port-x: unknown setting"),
        ("\n\nport = 70000\n", "gateway.toml:3: port: must be a port number, 1 to 65535"),
        ('port = "abc"\n', "gateway.toml:1: port: expected PORT, not 'abc'"),
        ("isolated = 1\n", "gateway.toml:1: isolated: expected true or false"),
        ('api-key = "sk-clear"\n', "gateway.toml:1: api-key: a config file keeps no key in clear"),
        ("[aliases]\nfast = 3\n", 'gateway.toml:2: aliases.fast: expected "provider/model"'),
        ('[aliases]\nok = "a/b"\nbad = "nomodel"\n', "gateway.toml:3: aliases.bad: expected"),
        ("port = [\n", "gateway.toml: not a TOML file: "),
    ],
)
def test_a_bad_file_is_refused_with_its_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    assert refusal(path).startswith(f"{tmp_path}/{expected}")


KEY = hash_key("sk-oo-one")
OTHER = hash_key("sk-oo-two")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (f'name = "a"\nkey = "{KEY}"\nmodelz = []\n', ":7: keys[1].modelz: unknown field"),
        ('name = "a"\nkey = "sk-oo-in-clear"\n', ":6: keys[1].key: expected sha256:"),
        (f'name = "a b"\nkey = "{KEY}"\n', ":5: keys[1].name: expected a name of letters"),
        (f'name = "api-key-1"\nkey = "{KEY}"\n', ":5: keys[1].name: api-key-N names"),
        (f'name = "a"\nkey = "{KEY}"\nrequests-per-minute = 0\n', ":7: keys[1].requests-per"),
        (f'name = "a"\nkey = "{KEY}"\nexpires = 2027-01-01T00:00:00\n', ":7: keys[1].expires"),
        (f'name = "a"\nkey = "{KEY}"\nmodels = "x"\n', ":7: keys[1].models: expected a list"),
        ('name = "a"\n', ":4: keys[1]: a key needs a key"),
        (f'name = "first"\nkey = "{KEY}"\n', ":5: keys[1].name: a second key named 'first'"),
        (f'name = "b"\nkey = "{OTHER}"\n', ":6: keys[1].key: the same key as an earlier one"),
    ],
)
def test_a_bad_key_is_refused_with_its_line(tmp_path: Path, keys: str, expected: str) -> None:
    # The first key takes lines 1 to 3; the second's header is line 4.
    path = write(tmp_path, f'[[keys]]\nname = "first"\nkey = "{OTHER}"\n[[keys]]\n{keys}')
    message = refusal(path)
    assert message.startswith(f"{path}{expected}"), message


def test_line_of_finds_keys_in_their_tables() -> None:
    text = textwrap.dedent(
        """
        port = 1
        [aliases]
        "claude-3.5" = "a/b"
        [[keys]]
        name = "x"
        [[keys]]
        # a comment
        name = "y"
        models = []
        """
    )
    assert line_of(text, ("port",)) == 2
    assert line_of(text, ("aliases", "claude-3.5")) == 4
    assert line_of(text, ("keys", 0, "name")) == 6
    assert line_of(text, ("keys", 1, "name")) == 9
    assert line_of(text, ("keys", 1, "expires")) == 7  # absent: its table's header
    assert line_of(text, ("keys", 2)) is None
    assert line_of(text, ("nowhere",)) is None


def test_a_config_file_that_cannot_be_read_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["server-openai", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


def test_keys_new_prints_the_key_once_and_its_hash_to_paste(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["keys", "new", "alice"]) == 0
    out = capsys.readouterr().out
    key = out.split(": ", 1)[1].split()[0]
    assert key.startswith("sk-oo-") and out.count(key) == 1
    pasted = out.split("\n\n", 1)[1]
    assert f'key = "{hash_key(key)}"' in pasted
    # The printed lines are a config file the gateway accepts, and the key opens it.
    path = write(tmp_path, pasted)
    config = parse("--config", str(path))
    assert find_key(key, config.accepted_keys) == config.keys[0]
    assert main(["keys", "new", "not a name"]) == 2


def test_the_docs_example_loads_and_names_every_setting(tmp_path: Path) -> None:
    [block] = [
        b
        for b in code_blocks(DOCS / "configuration.md")
        if (b.kind, b.name) == ("config", "docs/configuration.md")
    ]
    path = tmp_path / "example.toml"
    path.write_text(block.code)
    config = parse("--config", str(path))
    assert config.host == "0.0.0.0" and config.usage_log == Path(
        "/var/log/opencode-openai/usage.jsonl"
    )
    assert [key.name for key in config.keys] == ["ci", "alice"]
    assert config.keys[0].models == ("fast",) and config.keys[0].max_concurrent_turns == 2
    assert dict(config.model_aliases)["fast"] == "openai/gpt-4o-mini"
    named = {
        found.group(1)
        for found in re.finditer(r"^(?:# )?\[*([a-z-]+)\]*(?: =|$)", block.code, re.MULTILINE)
    }
    missing = {s.file_key for s in settings() if s.file_key} - named - {"config", "api-key"}
    assert not missing, f"the example does not show {sorted(missing)}"
