"""Flags and environment -> GatewayConfig, and the cross-flag refusals."""

from __future__ import annotations

import pytest

from opencode_openai.cli.main import build_parser, config_from_args
from opencode_openai.core.settings import GatewayConfig, SettingsError


@pytest.fixture(autouse=True)
def no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_PROXY_API_KEY",
        "OPENAI_PROXY_HOST",
        "OPENAI_PROXY_PORT",
        "OPENAI_PROXY_TIMEOUT",
        "OPENCODE_URL",
        "OPENCODE_SERVER_PASSWORD",
        "OPENCODE_OPENAI_ISOLATED",
    ):
        monkeypatch.delenv(name, raising=False)


def parse(*argv: str) -> tuple[GatewayConfig, bool]:
    return config_from_args(build_parser().parse_args(["server-openai", *argv]))


def test_defaults() -> None:
    config, generated = parse()
    assert (config.host, config.port, config.timeout_s) == ("127.0.0.1", 4040, 60.0)
    assert generated and len(config.api_keys) == 1 and config.auth
    assert config.mode == "embedded"


def test_env_sets_port_host_timeout_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_PROXY_PORT", "5050")
    monkeypatch.setenv("OPENAI_PROXY_HOST", "0.0.0.0")
    monkeypatch.setenv("OPENAI_PROXY_TIMEOUT", "1500")
    monkeypatch.setenv("OPENAI_PROXY_API_KEY", "sk-from-env")
    config, generated = parse()
    assert (config.host, config.port, config.timeout_s) == ("0.0.0.0", 5050, 1.5)
    assert not generated and [k.reveal() for k in config.api_keys] == ["sk-from-env"]


def test_flags_win_over_env_and_key_alias_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_PROXY_API_KEY", "sk-env")
    config, _ = parse("--api-key", "sk-one", "--key", "sk-two")
    assert [k.reveal() for k in config.api_keys] == ["sk-one", "sk-two"]


def test_keys_never_show_in_repr() -> None:
    config, _ = parse("--key", "sk-very-secret")
    assert "sk-very-secret" not in repr(config)


@pytest.mark.parametrize(
    "argv", [["--host", "0.0.0.0"], ["--host", "::"], ["--host", "10.0.0.1", "--no-auth"]]
)
def test_non_loopback_needs_a_key(argv: list[str]) -> None:
    with pytest.raises(SettingsError):
        parse(*argv)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_no_auth_is_fine_on_loopback(host: str) -> None:
    config, generated = parse("--host", host, "--no-auth")
    assert not config.auth and not generated and config.api_keys == ()


def test_attach_mode_reads_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCODE_SERVER_PASSWORD", "pw")
    config, _ = parse("--opencode-url", "http://127.0.0.1:9999")
    assert config.mode == "attach"
    assert config.opencode_password is not None and config.opencode_password.reveal() == "pw"


def test_isolated_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCODE_OPENAI_ISOLATED", "1")
    config, _ = parse()
    assert config.isolated


def test_timeout_must_be_positive() -> None:
    with pytest.raises(SettingsError):
        parse("--timeout", "0")
