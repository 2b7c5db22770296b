"""The running gateway's config, swapped whole on SIGHUP for the requests that come after.

Each request takes the config of its arrival into its own state (`SnapshotConfig`), so a
request in flight, a stream included, keeps the settings it started with to its end. What a
reload changes: the keys (their models, limits and expiry), `--timeout` and
`--max-tokens-over-limit`, read per request, and the model aliases, which `apply` hands to the
backend's catalogs (and which it may refuse). The rest (the address, OpenCode's processes, the
stores and logs) is built once at start-up: a reloaded file that changes one of them is logged
as needing a restart, and keeps the old value.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from opencode_openai.core.errors import SettingsError
from opencode_openai.core.settings import GatewayConfig, settings

__all__ = ["RELOADABLE", "LiveConfig", "SnapshotConfig"]

log = logging.getLogger("opencode_openai.reload")

#: The settings a reload changes for new requests.
RELOADABLE = frozenset(
    {"api_keys", "api_key_file", "keys", "timeout_s", "max_tokens_over_limit", "model_aliases"}
)


class LiveConfig:
    """The config new requests get; `reload` swaps it."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    def reload(
        self,
        read: Callable[[], GatewayConfig],
        apply: Callable[[GatewayConfig], None] | None = None,
    ) -> bool:
        """Read the settings again; apply the reloadable ones, or refuse a file that does not
        validate, or that `apply` refuses (SettingsError): the old settings then stay. Whether
        the new ones were applied."""
        old = self.config
        try:
            fresh = read()
            new = dataclasses.replace(old, **{name: getattr(fresh, name) for name in RELOADABLE})
            if apply is not None:
                apply(new)
        except SettingsError as exc:
            log.error("reload refused, the old settings stay: %s", exc)
            return False
        for setting in settings():
            name = setting.name
            if name not in RELOADABLE and getattr(fresh, name) != getattr(old, name):
                log.warning(
                    "reload: %s changed; it takes effect after a restart",
                    setting.file_key or name,
                )
        self.config = new
        log.info(
            "reloaded: %d keys (%s)",
            len(self.config.accepted_keys),
            ", ".join(key.name for key in self.config.accepted_keys),
        )
        return True


class SnapshotConfig:
    """Puts the live config of a request's arrival into the request's state."""

    def __init__(self, app: ASGIApp, live: LiveConfig) -> None:
        self.app = app
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["config"] = self.live.config
        await self.app(scope, receive, send)
