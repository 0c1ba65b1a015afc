"""Every error the bus raises, in one tree, each with a stable code.

The code is the contract: the same string travels in REST JSON, SOAP faults, logs and
metrics, so an agency's IT officer can look it up whatever channel reported it. Class
names equal codes so that ``except SchemaInvalid`` reads like the documentation::

    LgspError
    ├── PacketError                    the packet itself is unacceptable (4xx)
    │   ├── MalformedXml               400  not XML, truncated, mismatched tags
    │   ├── PayloadTooLarge            413  over the size cap, checked before parsing
    │   ├── DtdForbidden               400  DOCTYPE, entity, external reference, XInclude
    │   ├── TooDeep                    400  nesting deeper than the limit
    │   ├── TooManyElements            400  more elements than any real packet has
    │   ├── UnsupportedPacket          422  wrong namespace or packet kind
    │   ├── SchemaInvalid              422  XSD or second-pass check failed
    │   ├── AttachmentInvalid          422  base64, manifest mismatch, file name, size
    │   └── InvalidIdentifier          422  organisation identifier malformed
    ├── AccessError                    who may do what
    │   ├── Unauthenticated            401
    │   ├── Replayed                   401  a signed axis request seen before
    │   ├── SenderMismatch             403
    │   ├── RouteNotAllowed            403
    │   ├── StatusNotAllowed           403  a status from an organisation not entitled to it
    │   └── NotPermitted               403  an operator's action asked by a non-operator
    ├── UnknownRecipient               422  no directory entry and no route
    │   └── AmbiguousSuccessor         422  the code was split; the message names the candidates
    ├── DuplicateDocumentId            409  same id, different content
    ├── NotFound                       404  no such document (or not yours)
    ├── StateConflict                  409  the delivery's state does not allow this action
    ├── InvalidRequest                 400  a request parameter (not the packet) is wrong
    ├── HeadersTooLarge                431  request headers over the limit
    ├── RequestTimeout                 408  headers or body not sent in time
    ├── TooManyRequests                429  a system over its request rate (Retry-After)
    ├── Unavailable                    503  the bus cannot take work now (database down,
    │   │                                   too many connections); retry later
    │   ├── TooManyConnections         503  the server's connection cap is reached
    │   └── StorageFull                507  the data directory's disk is full
    └── ConfigInvalid                  routes.yaml / directory / settings rejected

Messages are written for the person who has to fix the sending system: what was wrong,
where (line and path when the packet is XML), and what is expected instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Location:
    """Where in a file a problem sits; ``path`` is a slash path of local names."""

    line: int | None = None
    path: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.path:
            parts.append(self.path)
        return ", ".join(parts)


class LgspError(Exception):
    """Root of the tree; carries a stable ``code`` and the HTTP status it maps to."""

    code: ClassVar[str] = "InternalError"
    http_status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        path: str | None = None,
        file: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = Location(line=line, path=path, file=file)
        self.details: dict[str, Any] = dict(details or {})

    @property
    def line(self) -> int | None:
        return self.location.line

    @property
    def path(self) -> str | None:
        return self.location.path

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of a refusal: ``code`` and ``message`` always, location if known."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.location.line is not None:
            out["line"] = self.location.line
        if self.location.path:
            out["path"] = self.location.path
        if self.location.file:
            out["file"] = self.location.file
        out.update(self.details)
        return out

    def __str__(self) -> str:
        where = str(self.location)
        return f"{self.code}: {self.message}" + (f" ({where})" if where else "")


class PacketError(LgspError):
    http_status = 422


class MalformedXml(PacketError):
    code = "MalformedXml"
    http_status = 400


class PayloadTooLarge(PacketError):
    code = "PayloadTooLarge"
    http_status = 413


class DtdForbidden(PacketError):
    code = "DtdForbidden"
    http_status = 400


class TooDeep(PacketError):
    code = "TooDeep"
    http_status = 400


class UnsupportedPacket(PacketError):
    code = "UnsupportedPacket"


class SchemaInvalid(PacketError):
    code = "SchemaInvalid"


class AttachmentInvalid(PacketError):
    code = "AttachmentInvalid"


class InvalidIdentifier(PacketError):
    code = "InvalidIdentifier"


class TooManyElements(PacketError):
    code = "TooManyElements"
    http_status = 400


class AccessError(LgspError):
    http_status = 403


class Unauthenticated(AccessError):
    code = "Unauthenticated"
    http_status = 401


class SenderMismatch(AccessError):
    code = "SenderMismatch"


class RouteNotAllowed(AccessError):
    code = "RouteNotAllowed"


class Replayed(AccessError):
    code = "Replayed"
    http_status = 401


class StatusNotAllowed(AccessError):
    code = "StatusNotAllowed"


class NotPermitted(AccessError):
    code = "NotPermitted"


class UnknownRecipient(LgspError):
    code = "UnknownRecipient"
    http_status = 422


class AmbiguousSuccessor(UnknownRecipient):
    """The recipient's code was split between several new ones and the directory names no
    split_route: the sender must address the one that now handles the matter."""

    code = "AmbiguousSuccessor"


class DuplicateDocumentId(LgspError):
    code = "DuplicateDocumentId"
    http_status = 409


class NotFound(LgspError):
    code = "NotFound"
    http_status = 404


class StateConflict(LgspError):
    code = "StateConflict"
    http_status = 409


class InvalidRequest(LgspError):
    code = "InvalidRequest"
    http_status = 400


class HeadersTooLarge(LgspError):
    code = "HeadersTooLarge"
    http_status = 431


class RequestTimeout(LgspError):
    """The client stalled while sending; the connection is closed after this answer."""

    code = "RequestTimeout"
    http_status = 408


class TooManyRequests(LgspError):
    """``details['retry_after']`` (seconds) becomes the Retry-After header."""

    code = "TooManyRequests"
    http_status = 429


class Unavailable(LgspError):
    """Nothing was stored: the sender retries later, as with any 5xx."""

    code = "Unavailable"
    http_status = 503


class TooManyConnections(Unavailable):
    code = "TooManyConnections"


class StorageFull(Unavailable):
    code = "StorageFull"
    http_status = 507


class SchemaOutdated(LgspError):
    """The database's schema is not the one this release runs on; a process refuses to
    start rather than write through a mismatched schema. Never a door's answer."""

    code = "SchemaOutdated"
    http_status = 503


@dataclass
class Problem:
    """One finding of a configuration check; many are collected before raising."""

    message: str
    file: str | None = None
    line: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = str(Location(line=self.line, path=self.path, file=self.file))
        return f"{where}: {self.message}" if where else self.message


class ConfigInvalid(LgspError):
    """Raised with every problem found, so an administrator fixes them in one pass."""

    code = "ConfigInvalid"
    http_status = 500

    def __init__(self, problems: list[Problem], *, file: str | None = None) -> None:
        self.problems = problems
        first = problems[0] if problems else Problem("invalid configuration")
        summary = f"{len(problems)} problem(s); first: {first}"
        super().__init__(summary, file=file or first.file, line=first.line, path=first.path)


@dataclass
class Notice:
    """A finding that does not refuse the packet (field-length limits, non-2016 identifiers)."""

    code: str
    message: str
    line: int | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


ALL_CODES: tuple[type[LgspError], ...] = (
    MalformedXml,
    PayloadTooLarge,
    DtdForbidden,
    TooDeep,
    TooManyElements,
    UnsupportedPacket,
    SchemaInvalid,
    AttachmentInvalid,
    InvalidIdentifier,
    Unauthenticated,
    SenderMismatch,
    RouteNotAllowed,
    StatusNotAllowed,
    Replayed,
    UnknownRecipient,
    AmbiguousSuccessor,
    DuplicateDocumentId,
    NotFound,
    InvalidRequest,
    HeadersTooLarge,
    RequestTimeout,
    TooManyRequests,
    Unavailable,
    TooManyConnections,
    StorageFull,
    ConfigInvalid,
)
