"""Authentication, the operation table and the refusal shape of the axis facade.

Every request is authenticated from its headers alone (:func:`bus.vxp.verify_headers`:
systemId registered and enabled, the HMAC over the received sign-header, every signed
key equal to the header sent, the clock) before a byte of its body is read, so an
unauthenticated 150 MB upload costs nothing. Only then is the body read, under its cap,
and sendEdoc's ``hash-file`` checked. Headers an operation acts on must be among the
signed ones; every other header (the SDK's stale map) is ignored.

Timestamps carry no zone: they are read in the system's registered ``timezone``
(config/vxp_systems.yaml) or else in the bus's (setting ``timezone``, Asia/Ho_Chi_Minh).
A refusal for a skew of a whole number of hours names the time zone, not the clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

import structlog

from bus import errors, vxp
from bus.api.vxp.replay import GUARDED, ReplayGuard, ReplayKey
from bus.api.vxp_systems import RegistryFile, VxpSystem
from bus.app import Bus
from bus.directory import Directory
from bus.store import Store, outage
from bus.store.blobs import PayloadBody

__all__ = ["Action", "Facade", "Failure", "MethodNotAllowed", "Result", "UnknownOperation"]

log = structlog.get_logger("lgsp.api.vxp")

_TIME: Final = "%Y-%m-%d %H:%M:%S"
_ZONE_SLACK_S: Final = 15 * 60
@dataclass(frozen=True)
class StreamedAnswer:
    """A JSON answer whose ``field`` is the base64 of ``body``, written as it is read
    (getEdoc of a packet kept as a file: never its whole base64 in memory)."""

    answer: dict[str, Any]
    field: str
    body: PayloadBody

    def encoded(self) -> tuple[int, Iterator[bytes]]:
        """The answer's length and its bytes in pieces, as :func:`vxp.encode_answer`
        would write it."""
        mark = "\x00lgsp-stream\x00"
        head, _, tail = vxp.encode_answer({**self.answer, self.field: mark}).partition(
            json.dumps(mark).encode("ascii"))
        size = len(head) + 2 + (self.body.size + 2) // 3 * 4 + len(tail)

        def pieces() -> Iterator[bytes]:
            yield head + b'"'
            for chunk in self.body.chunks(3 << 18):
                yield base64.b64encode(chunk)
            yield b'"' + tail

        return size, pieces()


Result = dict[str, Any] | bytes | PayloadBody | StreamedAnswer
Action = Callable[["Facade", VxpSystem, vxp.VerifiedRequest], Result]


class UnknownOperation(vxp.VxpError):
    code = vxp.ErrorCode.UNKNOWN_OPERATION
    http_status = 404


class MethodNotAllowed(vxp.VxpError):
    http_status = 405


@dataclass(frozen=True)
class Failure:
    """How one refusal is told: ``status`` and ``answer`` for JSON operations,
    ``error_status`` for downloadEdoc (whose body must stay empty)."""

    status: int
    answer: dict[str, Any]
    error_status: int

    @property
    def code(self) -> str:
        return str(self.answer["ErrorCode"])

    @property
    def desc(self) -> str:
        return str(self.answer["ErrorDesc"])


def _utc(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _iana(offset: timedelta) -> str:
    """The IANA name of a whole-hour offset (POSIX signs: Etc/GMT-7 is UTC+7)."""
    hours = round(offset.total_seconds() / 3600)
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


class Facade:
    """The operations run synchronously (database, hashing): call :meth:`run` in the
    threadpool. Authentication needs no I/O but a stat() of the registry file."""

    def __init__(self, bus: Bus, registry: RegistryFile, operations: dict[str, Action],
                 replay: ReplayGuard | None = None) -> None:
        self.bus = bus
        self.registry = registry
        self.operations = operations
        self.replay = replay or ReplayGuard()

    @property
    def store(self) -> Store:
        return self.bus.store

    @property
    def zone(self) -> tzinfo:
        zone: tzinfo = getattr(self.bus.settings, "zone", vxp.AXIS_TZ)
        return zone

    def directory(self) -> Directory:
        return self.bus.reloader.current().directory

    def time(self, epoch: float | None) -> str:
        """A moment as the facade writes it: ``yyyy-MM-dd HH:mm:ss`` in the bus's zone."""
        if epoch is None:
            return ""
        return datetime.fromtimestamp(epoch, UTC).astimezone(self.zone).strftime(_TIME)

    # ---- authentication ----------------------------------------------------------------

    def authenticate(self, headers: list[tuple[str, str]]) -> tuple[VxpSystem,
                                                                     vxp.VerifiedRequest]:
        """From the headers alone; raises a VxpError naming what to fix."""
        presented = next((v.strip() for k, v in headers
                          if k.lower() == "xroadvnpt-systemid"), None)
        if presented is None:
            raise vxp.MalformedRequest(
                "header XroadVnpt-systemid is missing: the request is not signed (the SDK's "
                "downloadEdoc2 sends no XroadVnpt headers; use downloadEdoc)")
        entry = self.registry.current().systems.get(presented)
        if entry is None:
            raise vxp.UnknownSystem(f"system {presented!r} is not registered on this axis")
        if entry.secret is None:
            raise vxp.UnknownSystem(f"systemId {presented!r} is registered but disabled: the "
                                    f"bus operator must set {entry.secret_env}")
        key = vxp.non_ascii_header(headers)
        if key is not None:
            raise vxp.MalformedRequest(
                f"header {vxp.HEADER_PREFIX}{key} carries non-ASCII bytes: the SDK sends only "
                "the low 8 bits of each character, so the signature cannot match; "
                "percent-encode the value (URLEncoder.encode(value, \"UTF-8\")) before "
                "passing it")
        zone = entry.zone or self.zone
        secret = entry.secret
        verified = vxp.verify_headers(headers, lambda sid: secret if sid == presented else None,
                                      skew_s=float("inf"), tz=zone)
        self._check_clock(entry, verified, zone)
        return entry, verified

    def _check_clock(self, entry: VxpSystem, verified: vxp.VerifiedRequest,
                     zone: tzinfo) -> None:
        now = datetime.now(UTC)
        offset = (verified.timestamp - now).total_seconds()
        if offset <= entry.max_clock_skew_s and -offset <= entry.max_age_s:
            return
        stamp = verified.param("timestamp")
        allowed = (f"allowed {entry.max_clock_skew_s:.0f}s ahead, {entry.max_age_s:.0f}s "
                   "behind")
        hours = round(offset / 3600)
        if hours and abs(offset - hours * 3600) <= _ZONE_SLACK_S:
            read_as = now.astimezone(zone).utcoffset() or timedelta(0)
            theirs = read_as + timedelta(hours=hours)
            if entry.zone is not None:
                cure = (f"config/vxp_systems.yaml registers it as {_zone_name(zone)}: correct "
                        "that entry, or")
            else:
                cure = (f"Register the zone it uses in config/vxp_systems.yaml (systems/"
                        f"\"{entry.system_id}\"/timezone: {_iana(theirs)}), or")
            message = (
                f"timestamp {stamp}, read as {_zone_name(zone)} time ({_utc(read_as)}), is "
                f"{offset:+.0f}s ({hours:+d} h) from the bus clock ({allowed}): a whole number "
                "of hours, so the clock is right but the TIME ZONE is wrong: the system "
                f"stamps its timestamps in {_utc(theirs)}. {cure} start its JVM with "
                f"-Duser.timezone={_zone_name(self.zone)}")
            if offset < 0:
                message += ("; (an SDK service object kept exactly that long looks the same: "
                            "then build a new one)")
        elif offset < 0:
            message = (f"timestamp {stamp} is {-offset:.0f}s old ({allowed}): the SDK stamps "
                       "its headers once, when its service object is built, so build a new "
                       "service object for each polling round (or raise max_age_s in "
                       "config/vxp_systems.yaml); if the object is new, synchronise the "
                       "system's clock (NTP)")
        else:
            message = (f"timestamp {stamp} is {offset:.0f}s ahead of the bus clock "
                       f"({allowed}): synchronise the system's clock (NTP)")
        raise vxp.ClockSkew(message)

    def claim(self, operation: str, entry: VxpSystem,
              verified: vxp.VerifiedRequest) -> ReplayKey | None:
        """Reserves the signature of a state-changing request (see :mod:`.replay`);
        registerAgency's with its body, which the signature does not cover."""
        if operation not in GUARDED:
            return None
        signature = (verified.param("hash-header") or "").strip().lower()
        if operation == vxp.Operation.REGISTER_AGENCY:
            signature += ":" + hashlib.sha256(verified.body).hexdigest()
        key = (entry.system_id, operation, signature)
        self.replay.claim(key, verified.timestamp.timestamp() + entry.max_age_s)
        return key

    # ---- helpers for operations --------------------------------------------------------

    @staticmethod
    def param(verified: vxp.VerifiedRequest, key: str, *, required: bool = True) -> str | None:
        """A header the operation acts on: it must be signed, or anyone could change it."""
        value = verified.param(key)
        if value is None:
            if required:
                raise vxp.MalformedRequest(f"header {vxp.HEADER_PREFIX}{key} is missing")
            return None
        if key.lower() not in {k.lower() for k in verified.signed_keys}:
            raise vxp.MalformedRequest(f"header {vxp.HEADER_PREFIX}{key} is not among the "
                                       "signed headers (sign-header-key)")
        return value.strip()

    def message_type(self, verified: vxp.VerifiedRequest) -> str | None:
        value = self.param(verified, "messagetype", required=False)
        if value is None or value == "":
            return None
        if value.lower() not in ("edoc", "status"):
            raise vxp.MalformedRequest(f"messagetype {value!r} is neither edoc nor status")
        return value.lower()

    def destination(self, entry: VxpSystem) -> str:
        destination = self.directory().destination_of(entry.system)
        if destination is None:
            raise errors.ConfigInvalid([errors.Problem(
                f"systemId {entry.system_id} maps to system {entry.system!r}, which the "
                "directory does not list")])
        return destination

    # ---- one call ----------------------------------------------------------------------

    def run(self, operation: str, entry: VxpSystem, verified: vxp.VerifiedRequest) -> Result:
        structlog.contextvars.bind_contextvars(vxp_system=entry.system_id)
        return self.operations[operation](self, entry, verified)

    def failure(self, operation: str, exc: Exception, *, counted: bool = False) -> Failure:
        """The refusal for ``exc``, logged and counted; never raises."""
        fields: dict[str, Any] = {"DocId": ""} if operation == vxp.Operation.SEND_EDOC else {}
        exc = outage(exc) or exc  # the database or the data directory's disk, not the call
        if isinstance(exc, vxp.VxpError):
            self._count(exc)
            log.info("vxp.refused", operation=operation, code=exc.code, reason=exc.message)
            status = 405 if isinstance(exc, MethodNotAllowed) else 200
            return Failure(status, {**exc.answer(), **fields}, exc.http_status)
        if isinstance(exc, errors.LgspError):
            if not counted:
                self._count(exc)
            if isinstance(exc, errors.Unavailable):
                log.warning("vxp.unavailable", operation=operation, code=exc.code,
                            reason=exc.message)
                return Failure(exc.http_status, {**_refusal(exc), **fields}, exc.http_status)
            if exc.http_status >= 500:
                log.error("vxp.error", operation=operation, code=exc.code, reason=str(exc))
                return Failure(500, vxp.fail_answer(
                    exc.code, "the provincial bus cannot serve this request now; an operator "
                    "must check its configuration", **fields), exc.http_status)
            log.info("vxp.refused", operation=operation, code=exc.code, reason=exc.message)
            return Failure(200, {**_refusal(exc), **fields}, exc.http_status)
        log.error("vxp.failed", operation=operation, error=type(exc).__name__, exc_info=exc)
        return Failure(500, vxp.fail_answer(vxp.ErrorCode.INTERNAL, "the provincial bus failed "
                                            "unexpectedly; the request may be repeated safely",
                                            **fields), 500)

    def _count(self, exc: vxp.VxpError | errors.LgspError) -> None:
        self.bus.metrics.refused.labels(str(exc.code), "vxp").inc()
        self.bus.evidence.refused(exc, "vxp")


def _refusal(exc: errors.LgspError) -> dict[str, Any]:
    where = ", ".join(p for p in (f"line {exc.line}" if exc.line else "", exc.path or "") if p)
    desc = f"{exc.message} ({where})" if where else exc.message
    extra: dict[str, Any] = {k: v for k, v in (("line", exc.line), ("path", exc.path)) if v}
    if isinstance(exc, errors.TooManyRequests):
        extra["retry_after"] = exc.details.get("retry_after", 1)
    return vxp.fail_answer(exc.code, desc, **extra)
