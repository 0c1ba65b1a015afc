"""Process settings: built-in defaults < a YAML file (``--config``) < ``LGSP_*`` environment.

The embedded default and the scaled-out deployment differ only here: leave
``database_url`` and ``broker_url`` empty and the bus runs on SQLite under ``data_dir``
with the database as its queue; set them and the same code uses PostgreSQL and RabbitMQ.
Secrets (database passwords, API keys) belong in the environment, not in the file.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus import errors
from bus.xmlsafe import DEFAULT_MAX_ELEMENTS

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    routes: Path = REPO_ROOT / "routes.yaml"
    directory: Path = REPO_ROOT / "config" / "directory.yaml"
    credentials: Path = REPO_ROOT / "config" / "credentials.yaml"
    vxp_systems: Path | None = None
    calendar: Path | None = None
    """Working-day calendar (``calendar.yaml``); default: beside ``directory``."""
    deadlines: Path | None = None
    """SLA rules (``deadlines.yaml``); default: beside ``directory``. Without both files
    the bus computes no deadlines."""
    """Systems registered at the provincial-axis facade; default: beside ``directory``."""
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    """The bus's address as clients reach it (``https://lgsp.example.gov.vn``), named in
    the WSDL; default: the address the server listens on. Never taken from requests."""
    max_elements: int = DEFAULT_MAX_ELEMENTS
    """Elements a packet may hold; real packets have tens to a few thousand."""
    bus_organ_id: str = "00.37.W00"
    max_body_bytes: int = 150 * 1024 * 1024
    """The size cap of a request body (a packet); up to 1 GiB: bodies are spooled to disk
    as they arrive, never held whole in memory."""
    payload_inline_below: int = 256 * 1024
    payload_store: Literal["auto", "files", "large_objects"] = "auto"
    """Where payloads at or above ``payload_inline_below`` go: ``files`` under
    ``data_dir/payloads`` (one node, or a data dir every node mounts), ``large_objects`` in
    PostgreSQL (shared by every node); ``auto``: files on SQLite, large objects on
    PostgreSQL."""
    """Payloads smaller than this are kept in the database; larger ones are files under
    ``data_dir/payloads`` (content-addressed, written before the document commits)."""
    max_attachment_bytes: int = 100 * 1024 * 1024
    delivery_threads: int = 4
    lease_s: float = 300.0
    requeue_unclaimed_after_s: float = 600.0
    poll_interval_s: float = 0.2
    sweep_interval_s: float = 5.0
    reload_check_s: float = 2.0
    directory_sync_interval_s: float = 0.0
    """Every so many seconds, prepare a change set from the national axis for an
    administrator to review (`lgsp directory sync show`); 0: never. Never applies one."""
    log_json: bool = True
    log_level: str = "INFO"
    timezone: str = "Asia/Ho_Chi_Minh"
    """IANA zone of every wall-clock time the bus writes (TraceHeader timestamps, the
    axis facade's times) and reads from SDK clients: the host's zone never counts, since
    containers usually run on UTC while every system on the axis runs on Vietnam time."""
    max_header_bytes: int = 32 * 1024
    """Request line plus headers; more is 431 HeadersTooLarge (no real client sends 8 KiB)."""
    header_timeout_s: float = 10.0
    """From a connection's first byte (or its opening) until the headers are complete."""
    body_idle_timeout_s: float = 30.0
    """Longest silence while a request body is still due; then 408 and the connection ends."""
    keep_alive_s: float = 5.0
    """An idle kept-alive connection is closed after this."""
    max_connections: int = 0
    """Concurrent connections; more are answered 503 TooManyConnections. 0: the process's
    file-descriptor limit (raised to its hard limit at start) minus ``fd_reserve``."""
    fd_reserve: int = 256
    """Descriptors kept for the database, the broker, logs and delivery sockets."""
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_client_ca: Path | None = None
    """CA bundle that client certificates must chain to (mutual TLS)."""
    tls_client_cert: Literal["none", "optional", "required"] = "none"
    console_secure_cookies: bool | None = None
    """Mark the console's cookies Secure (sent over HTTPS only). Default: on when the bus
    serves TLS itself; set true behind an nginx that terminates TLS."""
    trusted_proxies: list[str] = []
    """Addresses or networks of the reverse proxies whose client-certificate headers are
    believed (e.g. 127.0.0.1/32); from anybody else those headers are dropped."""
    # Reconciliation with the national axis (bus/reconcile).
    reconcile_at: str = "01:30"
    """Wall-clock time (HH:MM, in ``timezone``) at which a delivering process reconciles
    the previous day with the national axis; one process of many runs it (a database
    lease). Empty: no scheduled run (``lgsp reconcile axis`` still works)."""
    reconcile_grace_s: float = 600.0
    # How old the overdue gauge's count may be at a scrape (0: counted at every scrape).
    overdue_gauge_max_age_s: float = Field(default=30.0, ge=0)
    """An item the axis listed less than this long ago is in flight, not missing."""

    retention: dict[str, str] = {}
    """How long documents are kept, by kind and business type: ``{edoc: 3650d, status:
    1095d, edoc.revoke: 365d}`` (d, h, m, s; the most specific key wins). A kind with no
    key is kept for ever; held documents (``lgsp hold``) and documents with a delivery
    still under way are never purged."""
    purge_interval_s: float = 0.0
    """Run the retention purge in ``serve``/``worker`` this often; 0: only ``lgsp purge``."""
    purge_batch: int = 500
    """Documents removed per transaction at most (the pacing sizes each batch below it;
    with purge_batch_ms 0, every batch is this size)."""
    purge_batch_bytes: int = 64 * 1024 * 1024
    """...and payload bytes per transaction at most (at least one document per batch)."""
    purge_pause_s: float = 0.01
    """Pause between two purge batches at least, leaving the database to ingest (paced
    batches pause at least as long as they took)."""
    purge_batch_ms: float = Field(default=100.0, ge=0)
    """The longest a paced purge batch is sized to hold the database (its cost per
    document from the last batches); with purge_max_slowdown 0, every batch is sized to
    about this long. 0: fixed batches of purge_batch (bus.maintenance.pacing)."""
    purge_max_slowdown: float = Field(default=0.5, ge=0)
    """How much longer a live write may take because of the purge, as a fraction of its
    quiet latency: a probe write beside each batch measures it, and batches shrink (down
    to one document), then pauses lengthen, to keep within it. 0: no probes."""
    purge_live_ms: float = Field(default=10.0, ge=0)
    """A live request's quiet p99 at least, the slowdown being a fraction of it (the
    probe measures the database's part; its own p97 is used when higher, as on a busy
    disk). Read it off the bus's latency when it differs much: 9 ms on the embedded
    default, quiet machine. A purge inside serve uses the process's own recent accept
    p99 instead (bus.maintenance.livelatency) once it has 100 submissions to go by."""
    purge_min_docs_per_s: float = Field(default=30.0, ge=0)
    """The paced purge never goes slower than this, whatever the harm (logged once as
    ``purge.floor`` when it binds): 30 removes 100,000 documents within the hour even
    beside unbroken ingest. 0: no floor (the purge may crawl while ingest never stops)."""

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("reconcile_at")
    @classmethod
    def _wall_clock(cls, value: str) -> str:
        if value.strip() and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value.strip()):
            raise ValueError(f"{value!r} is not a time of day HH:MM (e.g. 01:30), nor empty")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Ho_Chi_Minh)") \
                from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def lifecycle_files(self) -> tuple[Path, Path] | None:
        """The calendar and SLA rule files, or None when the deployment has neither (one
        without the other is a configuration error, reported when they load)."""
        calendar = self.calendar or self.directory.parent / "calendar.yaml"
        rules = self.deadlines or self.directory.parent / "deadlines.yaml"
        if self.calendar is None and self.deadlines is None \
                and not (calendar.exists() or rules.exists()):
            return None
        return calendar, rules

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'lgsp.db').resolve()}"

    @property
    def embedded(self) -> bool:
        return not self.broker_url


_FIELDS = set(Settings.model_fields)


def _read_file(config_file: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's settings and the line of each top-level key; every way the file can be
    wrong (missing, unreadable, not YAML, not a mapping) is a ConfigInvalid naming it."""
    source = str(config_file)
    try:
        text = Path(config_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise errors.ConfigInvalid([errors.Problem(
            "settings file not found (--config names a YAML file of settings)",
            file=source)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise errors.ConfigInvalid([errors.Problem(f"cannot read: {reason}",
                                                   file=source)]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise errors.ConfigInvalid([errors.Problem(
            f"not valid YAML: {problem}", file=source,
            line=None if mark is None else mark.line + 1)]) from None
    if not isinstance(raw, dict):
        raise errors.ConfigInvalid([errors.Problem("expected a mapping of settings",
                                                   file=source)])
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            lines[str(key.value)] = key.start_mark.line + 1
    return raw, lines


def _problem(error: Any, origin: dict[str, str], lines: dict[str, int]) -> errors.Problem:
    key = str(error["loc"][0]) if error["loc"] else ""
    dotted = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, _FIELDS, n=1)
        message = f"{dotted}: unknown setting" + (f" (did you mean {close[0]!r}?)"
                                                   if close else "")
    else:
        message = f"{dotted}: {error['msg']}"
    source = origin.get(key, "defaults")
    return errors.Problem(message, file=source,
                          line=lines.get(key) if source not in ("argument",) and
                          not source.startswith("LGSP_") else None)


def load_settings(config_file: str | Path | None = None,
                  environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Merges the three layers; raises ConfigInvalid naming the bad key and its source
    (the file and line, the LGSP_* variable, or the command-line argument)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    lines: dict[str, int] = {}
    if config_file:
        raw, lines = _read_file(config_file)
        values.update(raw)
        origin.update(dict.fromkeys(map(str, raw), str(config_file)))
    for key in _FIELDS:
        env_value = environ.get("LGSP_" + key.upper())
        if env_value is not None:
            values[key] = env_value
            origin[key] = "LGSP_" + key.upper()
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    origin.update(dict.fromkeys(given, "argument"))
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = [_problem(e, origin, lines) for e in exc.errors()]
        raise errors.ConfigInvalid(problems, file=problems[0].file) from None
