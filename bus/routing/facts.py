"""What routing reads from a packet and from the directory, and the vocabulary of both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal, Protocol, get_args

Kind = Literal["edoc", "status"]
Business = Literal["new", "revoke", "update", "replace"]

KINDS: Final[frozenset[str]] = frozenset(get_args(Kind))
BUSINESSES: Final[frozenset[str]] = frozenset(get_args(Business))
BUSINESS_BY_DOCTYPE: Final[Mapping[int, Business]] = {
    0: "new",
    1: "revoke",
    2: "update",
    3: "replace",
}
RECALL_REQUEST: Final = "13"

DEFAULT_HOSTED: Final = "default:hosted"
DEFAULT_OUTSIDE: Final = "default:national_axis"
DEFAULT_STATUS: Final = "default:status-to-sender"
DEFAULT_RECALL: Final = "default:recall-to-recipient"

def business_from_doctype(value: int | None) -> Business | None:
    """Map BussinessDocType to its name; unknown numbers route as "no business type"."""
    if value is None:
        return None
    return BUSINESS_BY_DOCTYPE.get(value)


def normalize_status_code(code: str | int | None) -> str | None:
    """Statuses are two-digit strings on the wire, but YAML and producers drop the zero."""
    if code is None:
        return None
    text = str(code).strip()
    return text.zfill(2) if text.isdigit() and len(text) < 2 else text


class DirectoryView(Protocol):
    """What routing needs from the agency directory (bus.directory.Directory fits)."""

    def host_of(self, code: str) -> str | None: ...

    def destination_of(self, system: str) -> str | None: ...

    def resolve(self, code: str, on: date) -> tuple[str, tuple[str, ...]]: ...


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """The few fields of a packet that routing may look at, extracted by the parser.

    Keeping routing away from the full packet model means a rule can only depend on what
    ``lgsp routes explain`` can show, and tests build facts in one line.
    """

    kind: Kind
    sender: str
    recipients: tuple[str, ...] = ()
    business: Business | None = None
    document_type: int | None = None
    priority: int | None = None
    status_code: str | None = None
    response_for: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {self.kind!r}")
        if self.business is not None and self.business not in BUSINESSES:
            raise ValueError(f"business must be one of {sorted(BUSINESSES)}")
        if not isinstance(self.recipients, tuple):
            raise TypeError("recipients must be a tuple, so that facts stay hashable")

    def describe(self) -> str:
        """One line for logs and ``routes explain``."""
        if self.kind == "status":
            return (
                f"status {self.status_code} from {self.sender}"
                f" for ResponseFor/OrganId {self.response_for}"
            )
        parts = [f"edoc from {self.sender} to {', '.join(self.recipients) or '(nobody)'}"]
        if self.business is not None:
            parts.append(f"business {self.business}")
        if self.document_type is not None:
            parts.append(f"document type {self.document_type}")
        if self.priority is not None:
            parts.append(f"priority {self.priority}")
        return ", ".join(parts)
