"""GatewayConfig: every setting, defined once, in one frozen object.

Each field of GatewayConfig is a setting: its default, its command-line flag, its environment
variables, its help and its validation live on the field (`_setting`). The CLI's parser is
built from them (cli/main.py), the environment is read through them (`from_environment`), and
the checks run in `__post_init__`, so a config made any way (flags, env, tests, code) is
checked the same way. A flag wins over the environment. Each setting's first environment
variable follows its flag (`--max-queued-turns`: OPENCODE_OPENAI_MAX_QUEUED_TURNS, or the
OPENAI_PROXY_ prefix of the first settings); names that did not are still read, after it.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from opencode_openai.core.config_file import BadValue, read_config_file
from opencode_openai.core.errors import SettingsError
from opencode_openai.core.keys import ApiKey, keys_from_file, unlimited_key

__all__ = [
    "GatewayConfig",
    "Secret",
    "Setting",
    "SettingsError",
    "default_state_dir",
    "is_loopback",
    "settings",
]


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "opencode-openai"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


#: How a setting reads from a command line or an environment variable: a value, a switch
#: (present: true), a repeatable value (a list; in the environment, comma-separated).
Kind = Literal["value", "switch", "repeat"]


@dataclass(frozen=True)
class Setting:
    """What the CLI, the environment and the checks know of one GatewayConfig field."""

    name: str
    flags: tuple[str, ...]
    env: tuple[str, ...]
    help: str
    kind: Kind = "value"
    metavar: str | None = None
    #: Text (a flag's or a variable's value) -> the field's value.
    parse: Callable[[str], Any] = str
    #: The field's value -> a complaint, or None when it is fine.
    check: Callable[[Any], str | None] | None = None
    #: The default as a user writes it, for --help (None: not shown).
    shown_default: str | None = None
    #: The field's value when the switch is given (kind "switch").
    switched: Any = True
    #: Its key in the config file, when not its flag without the dashes.
    file: str | None = None
    #: A TOML value (a table, a list of tables) -> the field's value; raises BadValue.
    read_file: Callable[[Any], Any] | None = None

    @property
    def flag(self) -> str | None:
        return self.flags[0] if self.flags else None

    @property
    def file_key(self) -> str | None:
        """Its key in the config file; None: the environment's only (a password)."""
        return self.file or (self.flag.removeprefix("--") if self.flag else None)


def _setting(
    default: Any = None,
    *,
    flags: tuple[str, ...] = (),
    env: tuple[str, ...] = (),
    help: str,
    factory: Callable[[], Any] | None = None,
    **options: Any,
) -> Any:
    """A GatewayConfig field that is a setting (see `Setting` for the options)."""

    def make(name: str) -> Setting:
        return Setting(name, flags, env, help, **options)

    metadata = {"setting": make}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda value: None if value >= low else f"must be at least {low:g}"


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be a port number, 1 to 65535"


def _ms_to_s(text: str) -> float:
    return int(text) / 1000


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _keys(text: str) -> tuple[Secret, ...]:
    return (Secret(text),)


def _secret(text: str) -> Secret:
    return Secret(text)


def _origins(text: str) -> tuple[str, ...]:
    return tuple(origin.strip() for origin in text.split(",") if origin.strip())


def _aliases(text: str) -> tuple[tuple[str, str], ...]:
    """`NAME=provider/model`, several comma-separated."""
    aliases = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, target = item.partition("=")
        if not name.strip() or "/" not in target.strip():
            raise ValueError(f"{item!r} is not NAME=provider/model")
        aliases.append((name.strip(), target.strip()))
    return tuple(aliases)


def _alias_table(value: Any) -> tuple[tuple[str, str], ...]:
    """The file's `[aliases]` table, `NAME = "provider/model"`, read as the flag's values."""
    if not isinstance(value, dict):
        raise BadValue('expected a table of NAME = "provider/model"')
    aliases: list[tuple[str, str]] = []
    for name, target in value.items():
        if not isinstance(target, str):
            raise BadValue('expected "provider/model"', (name,))
        try:
            aliases += _aliases(f"{name}={target}")
        except ValueError as exc:
            raise BadValue(f'expected "provider/model" ({exc})', (name,)) from exc
    return tuple(aliases)


def _no_clear_keys(value: Any) -> Any:
    raise BadValue(
        "a config file keeps no key in clear: add a [[keys]] table with its hash "
        "(`opencode-openai keys new NAME` prints one)"
    )


def _not_in_file(value: Any) -> Any:
    raise BadValue("a config file cannot name another one")


def _positive_s(value: float) -> str | None:
    return None if value > 0 else "must be a positive number"


_STORE_SCHEMES = ("redis://", "rediss://", "unix://")


def _store_url(value: Secret) -> str | None:
    url = value.reveal()
    if url == "sqlite" or (url.startswith(_STORE_SCHEMES) and len(url) > len("unix://")):
        return None
    return "must be sqlite or a Redis URL (redis://, rediss://, unix://)"


_LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_level(value: str) -> str | None:
    return None if value in _LOG_LEVELS else f"must be one of {', '.join(_LOG_LEVELS)}"


@dataclass(frozen=True)
class GatewayConfig:
    #: A TOML file of settings (each flag's name without its dashes), keys and aliases.
    config_file: Path | None = _setting(
        flags=("--config",),
        env=("OPENAI_PROXY_CONFIG",),
        help="TOML file of settings (flags and environment win over it), [[keys]] and [aliases]",
        metavar="FILE",
        parse=Path,
        read_file=_not_in_file,
    )
    host: str = _setting(
        "127.0.0.1",
        flags=("--host",),
        env=("OPENAI_PROXY_HOST",),
        metavar="HOST",
        help="address to listen on",
        shown_default="127.0.0.1",
    )
    port: int = _setting(
        4040,
        flags=("--port",),
        env=("OPENAI_PROXY_PORT",),
        metavar="PORT",
        help="port to listen on",
        parse=int,
        check=_port,
        shown_default="4040",
    )
    #: Accepted bearer keys; empty with `auth` on means nobody gets in.
    api_keys: tuple[Secret, ...] = _setting(
        (),
        flags=("--api-key", "--key"),
        env=("OPENAI_PROXY_API_KEY",),
        help="API key clients must send as a bearer token; repeat for several; without one a "
        "random key is generated and printed",
        kind="repeat",
        metavar="KEY",
        parse=_keys,
        read_file=_no_clear_keys,
    )
    api_key_file: Path | None = _setting(
        flags=("--api-key-file",),
        env=("OPENAI_PROXY_API_KEY_FILE",),
        help="file with accepted API keys, one per line ('#' comments)",
        metavar="FILE",
        parse=Path,
    )
    #: False only with --no-auth, which is refused beyond loopback.
    auth: bool = _setting(
        True,
        flags=("--no-auth",),
        env=("OPENCODE_OPENAI_NO_AUTH",),
        help="accept requests without a key (loopback hosts only)",
        kind="switch",
        parse=lambda text: not _flag(text),
        switched=False,
    )
    #: OPENAI_PROXY_TIMEOUT: the longest a request may take, from its arrival to its last byte.
    timeout_s: float = _setting(
        60.0,
        flags=("--timeout",),
        env=("OPENAI_PROXY_TIMEOUT",),
        help="longest time a request may take, from its arrival to its last byte, in ms",
        metavar="MS",
        parse=_ms_to_s,
        check=_positive_s,
        shown_default="60000",
    )
    #: Requests whose body is larger get 413 (images travel inline, so keep it generous).
    max_body_bytes: int = _setting(
        32 * 1024 * 1024,
        flags=("--max-body-bytes",),
        env=("OPENAI_PROXY_MAX_BODY_BYTES",),
        metavar="BYTES",
        help="largest accepted request body",
        parse=int,
        check=_at_least(1),
        shown_default=str(32 * 1024 * 1024),
    )
    #: Turns running at once per OpenCode process, and turns waiting beyond those (then 429).
    max_concurrent_turns: int = _setting(
        64,
        flags=("--max-concurrent-turns",),
        env=("OPENCODE_OPENAI_MAX_CONCURRENT_TURNS",),
        metavar="N",
        help="requests running at once; more wait in a queue",
        parse=int,
        check=_at_least(1),
        shown_default="64",
    )
    max_queued_turns: int = _setting(
        256,
        flags=("--max-queued-turns",),
        env=("OPENCODE_OPENAI_MAX_QUEUED_TURNS",),
        metavar="N",
        help="requests waiting for a slot; beyond, 429 with Retry-After",
        parse=int,
        check=_at_least(0),
        shown_default="256",
    )
    #: Browser origins allowed by CORS; none by default (CORS off).
    cors_origins: tuple[str, ...] = _setting(
        (),
        flags=("--cors-origin",),
        env=("OPENCODE_OPENAI_CORS_ORIGINS",),
        help="allow browser requests from this origin (repeat for several; CORS is off by "
        "default; in the environment, comma-separated)",
        kind="repeat",
        metavar="ORIGIN",
        parse=_origins,
    )
    #: On SIGTERM, how long running requests may take to finish before they are aborted.
    shutdown_grace_s: float = _setting(
        10.0,
        flags=("--shutdown-grace",),
        env=("OPENCODE_OPENAI_SHUTDOWN_GRACE",),
        help="on SIGTERM, how long running requests may take to finish",
        metavar="SECONDS",
        parse=float,
        check=_at_least(0),
        shown_default="10",
    )
    #: Embedded OpenCode processes (one per core scales throughput); attach mode has one.
    opencode_workers: int = _setting(
        1,
        flags=("--opencode-workers",),
        env=("OPENCODE_OPENAI_OPENCODE_WORKERS", "OPENCODE_OPENAI_WORKERS"),
        help="OpenCode processes to start and balance across (embedded mode; one per core)",
        metavar="N",
        parse=int,
        check=_at_least(1),
        shown_default="1",
    )
    #: Recycle (drain, then restart) an OpenCode process after this many turns, or once it grows
    #: past this RSS; 0 turns it off. OpenCode keeps memory it once used.
    recycle_after_turns: int = _setting(
        5000,
        flags=("--recycle-after-turns",),
        env=("OPENCODE_OPENAI_RECYCLE_AFTER_TURNS", "OPENCODE_OPENAI_RECYCLE_TURNS"),
        help="drain and restart an OpenCode process after N turns; 0: never",
        metavar="N",
        parse=int,
        check=_at_least(0),
        shown_default="5000",
    )
    recycle_rss_mb: int = _setting(
        1536,
        flags=("--recycle-rss-mb",),
        env=("OPENCODE_OPENAI_RECYCLE_RSS_MB",),
        help="drain and restart an OpenCode process grown past this RSS; 0: never",
        metavar="MB",
        parse=int,
        check=_at_least(0),
        shown_default="1536",
    )
    #: Attach mode: an OpenCode server already running; None starts an embedded one.
    opencode_url: str | None = _setting(
        flags=("--opencode-url",),
        env=("OPENCODE_OPENAI_OPENCODE_URL", "OPENCODE_URL"),
        help="attach to this running OpenCode server instead of starting one; its password is "
        "read from OPENCODE_SERVER_PASSWORD",
        metavar="URL",
    )
    opencode_password: Secret | None = _setting(
        env=("OPENCODE_SERVER_PASSWORD",),
        help="the attached OpenCode server's password (environment only)",
        parse=_secret,
    )
    opencode_bin: str | None = _setting(
        flags=("--opencode-bin",),
        env=("OPENCODE_OPENAI_OPENCODE_BIN", "OPENCODE_BIN"),
        help="opencode binary to start (default: the one in this Python environment's scripts "
        "directory, where scripts/install links the pinned one, then PATH)",
        metavar="PATH",
    )
    #: Extra OpenCode config merged into the generated layer (embedded mode).
    opencode_config: Path | None = _setting(
        flags=("--opencode-config",),
        env=("OPENCODE_OPENAI_OPENCODE_CONFIG", "OPENCODE_OPENAI_CONFIG"),
        help="extra OpenCode config (JSON) merged into the generated one, e.g. a provider for a "
        "local Ollama or vLLM",
        metavar="FILE",
        parse=Path,
    )
    #: A throwaway OpenCode home: no user config, auth or provider keys from the environment.
    isolated: bool = _setting(
        False,
        flags=("--isolated",),
        env=("OPENCODE_OPENAI_ISOLATED",),
        help="give OpenCode a home of its own under the state dir: none of your OpenCode "
        "config, auth or provider keys",
        kind="switch",
        parse=_flag,
    )
    #: Where the gateway keeps its OpenCode workspace, home and logs; one gateway per state dir.
    state_dir: Path = _setting(
        flags=("--state-dir",),
        env=("OPENCODE_OPENAI_STATE_DIR",),
        metavar="DIR",
        help="where the gateway keeps its OpenCode workspace, home and logs; each running "
        "gateway needs its own",
        parse=Path,
        factory=default_state_dir,
        shown_default="~/.local/state/opencode-openai",
    )
    #: How long OpenCode may take to start and warm up before start-up fails.
    startup_timeout_s: float = _setting(
        120.0,
        flags=("--startup-timeout",),
        env=("OPENCODE_OPENAI_STARTUP_TIMEOUT",),
        help="how long OpenCode may take to start and warm up",
        metavar="SECONDS",
        parse=float,
        check=_positive_s,
        shown_default="120",
    )
    #: Names clients insist on (Claude Code's `claude-…` ids, say) for gateway models, in order;
    #: `opencode/default` comes first, before these (one of these may name it anew).
    model_aliases: tuple[tuple[str, str], ...] = _setting(
        (),
        flags=("--model-alias",),
        env=("OPENCODE_OPENAI_MODEL_ALIAS",),
        help="let clients ask for model NAME and get provider/model; repeat for several; "
        "checked at start-up (in the environment, comma-separated)",
        kind="repeat",
        metavar="NAME=provider/model",
        parse=_aliases,
        file="aliases",
        read_file=_alias_table,
    )
    #: Named keys, each with its models, limits and expiry: the config file's `[[keys]]`.
    keys: tuple[ApiKey, ...] = _setting(
        (),
        help="named keys with their models, limits and expiry (config file only)",
        file="keys",
        read_file=keys_from_file,
    )
    #: A JSON-lines file with one line per API request: who, which model, tokens, timing.
    usage_log: Path | None = _setting(
        flags=("--usage-log",),
        env=("OPENCODE_OPENAI_USAGE_LOG",),
        help="append one JSON line per API request (key name, model, tokens, timing; never "
        "a prompt or a key) to FILE; `opencode-openai usage` sums it up",
        metavar="FILE",
        parse=Path,
    )
    #: A requested output token limit above the model's: clamp it to the model's, or refuse.
    max_tokens_over_limit: str = _setting(
        "clamp",
        flags=("--max-tokens-over-limit",),
        env=("OPENCODE_OPENAI_MAX_TOKENS_OVER_LIMIT",),
        help="a max_tokens above the model's output limit: clamp it to the limit, or reject it "
        "with 400",
        metavar="clamp|reject",
        check=lambda value: None if value in ("clamp", "reject") else "must be clamp or reject",
        shown_default="clamp",
    )
    #: Stored responses (`store: true` on POST /v1/responses): where, how long, how much.
    response_store_file: Path | None = _setting(
        flags=("--response-store-file",),
        env=("OPENCODE_OPENAI_RESPONSE_STORE_FILE",),
        help="SQLite database of stored responses (POST /v1/responses with store: true); "
        "default: responses.sqlite3 in the state dir",
        metavar="FILE",
        parse=Path,
    )
    response_store_max_age_s: float = _setting(
        30 * 24 * 3600.0,
        flags=("--response-store-max-age",),
        env=("OPENCODE_OPENAI_RESPONSE_STORE_MAX_AGE",),
        help="how long a stored response is kept, in seconds (2592000: 30 days)",
        metavar="SECONDS",
        parse=float,
        check=_positive_s,
        shown_default=str(30 * 24 * 3600),
    )
    response_store_max_mb: int = _setting(
        1024,
        flags=("--response-store-max-mb",),
        env=("OPENCODE_OPENAI_RESPONSE_STORE_MAX_MB",),
        help="most space stored responses take; beyond it the oldest are dropped",
        metavar="MB",
        parse=int,
        check=_at_least(1),
        shown_default="1024",
    )
    #: Where stored responses and the keys' limits live: this gateway's own (SQLite, in
    #: process), or a Redis that every replica shares.
    store: Secret = _setting(
        Secret("sqlite"),
        flags=("--store",),
        env=("OPENCODE_OPENAI_STORE",),
        help="where stored responses and the keys' rate-limit counts live: sqlite (this "
        "gateway's own) or a Redis URL (redis://[:PASSWORD@]HOST:PORT/DB, rediss://, "
        "unix://PATH) that replicas share",
        metavar="sqlite|URL",
        parse=Secret,
        check=_store_url,
        shown_default="sqlite",
    )
    store_prefix: str = _setting(
        "opencode-openai",
        flags=("--store-prefix",),
        env=("OPENCODE_OPENAI_STORE_PREFIX",),
        help="the prefix of the shared store's keys in Redis: replicas that share state "
        "share it; another deployment on the same Redis takes another",
        metavar="PREFIX",
        check=lambda value: None if value and ":" not in value else "must be a word, no ':'",
        shown_default="opencode-openai",
    )
    log_level: str = _setting(
        "info",
        flags=("--log-level",),
        env=("OPENCODE_OPENAI_LOG_LEVEL",),
        metavar="LEVEL",
        help=f"log level: {', '.join(_LOG_LEVELS)}",
        check=_log_level,
        shown_default="info",
    )

    def __post_init__(self) -> None:
        for setting in settings():
            complaint = setting.check(getattr(self, setting.name)) if setting.check else None
            if complaint:
                raise SettingsError(f"{_label(setting)} {complaint}")
        loopback = is_loopback(self.host)
        if not self.auth and not loopback:
            raise SettingsError(f"--no-auth is only accepted on a loopback host, not {self.host}")
        if self.auth and not self.accepted_keys and not loopback:
            raise SettingsError(
                f"refusing to listen on {self.host} without an API key: pass --api-key, set "
                "OPENAI_PROXY_API_KEY or name [[keys]] in --config (a generated key is only "
                "offered on loopback)"
            )
        if self.opencode_workers > 1 and self.opencode_url:
            raise SettingsError(
                "--opencode-workers > 1 needs embedded mode: attach mode has one server"
            )

    @functools.cached_property
    def accepted_keys(self) -> tuple[ApiKey, ...]:
        """Every key a client may send: --api-key, OPENAI_PROXY_API_KEY and --api-key-file keys
        as unlimited keys named `api-key-1`, `api-key-2`… in that order, then the named keys
        of the config file."""
        return (
            *(
                unlimited_key(f"api-key-{number}", secret.reveal())
                for number, secret in enumerate(self.api_keys, start=1)
            ),
            *self.keys,
        )

    @property
    def shared_store(self) -> bool:
        """Whether the store is a Redis that several gateways may share."""
        return self.store.reveal() != "sqlite"

    @property
    def mode(self) -> str:
        return "attach" if self.opencode_url else "embedded"

    @classmethod
    def from_sources(
        cls, given: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> GatewayConfig:
        """The config from values given on the command line (by field name; a flag that was
        not given is absent), then the environment, then the config file, then the defaults.
        The API key file's keys join the others."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in settings():
            if setting.name in given:
                values[setting.name] = given[setting.name]
                continue
            for variable in setting.env:
                text = environ.get(variable)
                if text:
                    values[setting.name] = _from_text(setting, text, variable)
                    break
        if values.get("config_file") is not None:
            for name, value in read_config_file(values["config_file"], settings()).items():
                values.setdefault(name, value)
        if values.get("api_key_file") is not None:
            values["api_keys"] = (
                *values.get("api_keys", ()),
                *_read_key_file(values["api_key_file"]),
            )
        return cls(**values)


def settings() -> Iterator[Setting]:
    """Every setting, in GatewayConfig's order."""
    for item in dataclasses.fields(GatewayConfig):
        yield item.metadata["setting"](item.name)


def _label(setting: Setting) -> str:
    return " / ".join(filter(None, (setting.flag, *setting.env[:1])))


def _from_text(setting: Setting, text: str, source: str) -> Any:
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise SettingsError(f"{source}: cannot read {text!r} ({exc})") from exc


def _read_key_file(path: Path) -> tuple[Secret, ...]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SettingsError(f"cannot read the API key file {path}: {exc.strerror}") from exc
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise SettingsError(f"the API key file {path} holds no key")
    return tuple(Secret(key) for key in keys)
