"""core/keys.py: hashes, lookup by hash, model rules, expiry."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

import pytest

from opencode_openai.core.keys import ApiKey, find_key, hash_key, new_key, unlimited_key
from opencode_openai.core.settings import GatewayConfig, Secret


def test_a_new_key_is_random_and_stored_only_as_its_hash() -> None:
    first, second = new_key(), new_key()
    assert first != second and first.startswith("sk-oo-") and len(first) > 40
    digest = hash_key(first)
    assert digest.startswith("sha256:") and first not in digest
    assert hash_key(first) == digest != hash_key(second)


def test_find_key_returns_the_key_whose_hash_matches() -> None:
    alice, bob = new_key(), new_key()
    keys = (ApiKey("alice", hash_key(alice)), ApiKey("bob", hash_key(bob)))
    assert find_key(alice, keys) == keys[0]
    assert find_key(bob, keys) == keys[1]
    assert find_key(alice[:-1], keys) is None
    assert find_key("", keys) is None
    assert find_key(alice, ()) is None


def test_model_rules_take_ids_aliases_and_globs() -> None:
    key = ApiKey("k", hash_key("x"), models=("fake/fake-model", "openai/*", "fast"))
    assert key.may_use("fake/fake-model")
    assert key.may_use("openai/gpt-5")
    assert key.may_use("fast")
    assert not key.may_use("anthropic/claude")
    assert not key.may_use("fake/fake-model-2")
    assert ApiKey("all", hash_key("y")).may_use("anything/at-all")


def test_expiry_is_a_moment() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    key = ApiKey("k", hash_key("x"), expires=now)
    assert key.expired(now) and key.expired(now + timedelta(seconds=1))
    assert not key.expired(now - timedelta(seconds=1))
    assert not ApiKey("k", hash_key("x")).expired(now)


def test_flag_keys_are_unlimited_keys_named_in_order() -> None:
    config = GatewayConfig(api_keys=(Secret("one"), Secret("two")))
    assert config.accepted_keys == (
        unlimited_key("api-key-1", "one"),
        unlimited_key("api-key-2", "two"),
    )
    assert not any(key.limited or key.models for key in config.accepted_keys)


def test_find_key_compares_a_token_with_every_key_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Constant time by structure: whatever the token (right, wrong, half right, short), every
    key's hash is compared, in the same order, with `hmac.compare_digest`, on digests of one
    length. So no early exit and no length says how much of a wrong key was right."""
    secrets_ = [new_key() for _ in range(5)]
    keys = tuple(ApiKey(f"k{i}", hash_key(secret)) for i, secret in enumerate(secrets_))
    calls: list[tuple[int, int, str]] = []
    real = hmac.compare_digest

    def counted(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b), next(k.name for k in keys if k.digest.encode() == b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counted)
    right = secrets_[0]
    for token in (right, right[:-1] + "x", right[: len(right) // 2], "x", secrets_[4], ""):
        calls.clear()
        find_key(token, keys)
        assert calls == [(71, 71, f"k{i}") for i in range(5)], token
