"""app/live_config.py: a reload swaps the reloadable settings, refuses a bad file, and says
which changes need a restart."""

from __future__ import annotations

import logging

import pytest

from opencode_openai.app.live_config import RELOADABLE, LiveConfig
from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.settings import GatewayConfig, Secret, SettingsError, settings

BOB = ApiKey("bob", hash_key("sk-oo-bob"))


def test_a_reload_swaps_keys_and_keeps_what_needs_a_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = GatewayConfig(api_keys=(Secret("sk-one"),), port=4040)
    live = LiveConfig(old)
    fresh = GatewayConfig(keys=(BOB,), port=5050, timeout_s=5.0)
    with caplog.at_level(logging.INFO, logger="opencode_openai.reload"):
        assert live.reload(lambda: fresh)
    assert live.config.keys == (BOB,) and live.config.api_keys == ()
    assert live.config.timeout_s == 5.0
    assert live.config.port == 4040  # not reloadable: the old value stays
    assert "port changed; it takes effect after a restart" in caplog.text
    assert "reloaded: 1 keys (bob)" in caplog.text
    assert old.port == 4040 and old.keys == ()  # a request holding the old one keeps it


def test_a_file_that_does_not_validate_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    old = GatewayConfig(keys=(BOB,))
    live = LiveConfig(old)

    def broken() -> GatewayConfig:
        raise SettingsError("gateway.toml:3: prot: unknown setting")

    assert not live.reload(broken)
    assert live.config is old
    assert "reload refused, the old settings stay: gateway.toml:3: prot" in caplog.text


def test_a_reload_that_leaves_a_public_host_without_keys_is_refused() -> None:
    old = GatewayConfig(host="0.0.0.0", keys=(BOB,))
    live = LiveConfig(old)
    assert not live.reload(lambda: GatewayConfig())
    assert live.config is old


def test_reloadable_names_are_settings() -> None:
    assert {setting.name for setting in settings()} >= RELOADABLE


def test_aliases_reload_through_apply_which_may_refuse_them() -> None:
    live = LiveConfig(GatewayConfig(model_aliases=(("fast", "fake/fake-model"),)))
    applied: list[tuple[tuple[str, str], ...]] = []
    assert live.reload(
        lambda: GatewayConfig(model_aliases=(("quick", "fake/fake-model"),)),
        lambda new: applied.append(new.model_aliases),
    )
    assert applied == [(("quick", "fake/fake-model"),)]
    assert live.config.model_aliases == (("quick", "fake/fake-model"),)

    def refuse(new: GatewayConfig) -> None:
        raise SettingsError("--model-alias names a model OpenCode does not offer: x=no/such")

    kept = live.config
    assert not live.reload(lambda: GatewayConfig(model_aliases=(("x", "no/such"),)), refuse)
    assert live.config is kept
