"""One rule of routes.yaml: its conditions (:class:`Match`) and its actions (:class:`Rule`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from bus.errors import ALL_CODES, ConfigInvalid, LgspError
from bus.routing.facts import Business, Kind, RoutingFacts, normalize_status_code

REFUSAL_CODES: Final[Mapping[str, type[LgspError]]] = {
    cls.code: cls for cls in ALL_CODES if cls is not ConfigInvalid
}
"""Error codes a ``refuse`` action may name: every packet-facing code of bus.errors."""

@dataclass(frozen=True, slots=True)
class Addressee:
    """One addressee as rules see it: the packet, the effective code, its hosting system."""

    facts: RoutingFacts
    code: str
    system: str | None


@dataclass(frozen=True, slots=True)
class CodeMatch:
    """An organisation-code condition; a code matches if any of the three forms accepts it.

    Exact codes, prefixes and a full-match regular expression cover what administrators
    write: one agency, one branch of the hierarchy, or a province suffix such as
    ``.*\\.H37``. Matching is case-sensitive, like the directory.
    """

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def __call__(self, code: str) -> bool:
        if code in self.exact:
            return True
        if self.prefixes and code.startswith(self.prefixes):
            return True
        return self.pattern is not None and self.pattern.fullmatch(code) is not None

    def covers(self, other: CodeMatch) -> bool:
        """True when every code ``other`` accepts is accepted here (conservatively)."""
        if self == other:
            return True
        if other.prefixes or other.pattern is not None:
            return False
        return all(self(code) for code in other.exact)

    def __str__(self) -> str:
        forms = []
        if self.exact:
            forms.append("one of " + ", ".join(sorted(self.exact)))
        if self.prefixes:
            forms.append("starting with " + " or ".join(self.prefixes))
        if self.pattern is not None:
            forms.append(f"matching /{self.pattern.pattern}/")
        return " or ".join(forms) or "nothing"


def _set_text(values: frozenset[Any]) -> str:
    return ", ".join(str(v) for v in sorted(values, key=str))


@dataclass(frozen=True, slots=True)
class Match:
    """A rule's conditions, all optional and ANDed; an empty match is a catch-all.

    ``recipient``, ``recipient_hosted`` and ``recipient_system`` look at the addressee after
    successor resolution (for a status: ResponseFor/OrganId). ``sender`` looks at From as
    sent: senders are authenticated under the code they use.
    """

    kind: Kind | None = None
    sender: CodeMatch | None = None
    recipient: CodeMatch | None = None
    business: frozenset[Business] | None = None
    document_type: frozenset[int] | None = None
    priority: frozenset[int] | None = None
    status_code: frozenset[str] | None = None
    recipient_hosted: bool | None = None
    recipient_system: frozenset[str] | None = None

    @property
    def is_catch_all(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def first_failure(self, who: Addressee) -> str | None:
        """Name of the first condition that fails, or None when the rule matches.

        Returning a constant name rather than a sentence keeps the hot path free of string
        formatting; :meth:`describe_failure` turns it into words for ``explain``.
        """
        facts = who.facts
        if self.kind is not None and facts.kind != self.kind:
            return "kind"
        if self.sender is not None and not self.sender(facts.sender):
            return "sender"
        if self.recipient is not None and not self.recipient(who.code):
            return "recipient"
        if self.business is not None and facts.business not in self.business:
            return "business"
        if self.document_type is not None and facts.document_type not in self.document_type:
            return "document_type"
        if self.priority is not None and facts.priority not in self.priority:
            return "priority"
        if (
            self.status_code is not None
            and normalize_status_code(facts.status_code) not in self.status_code
        ):
            return "status_code"
        if self.recipient_hosted is not None and (who.system is not None) != self.recipient_hosted:
            return "recipient_hosted"
        if self.recipient_system is not None and who.system not in self.recipient_system:
            return "recipient_system"
        return None

    def describe_failure(self, condition: str, who: Addressee) -> str:
        facts = who.facts
        match condition:
            case "kind":
                return f"packet is {facts.kind}, rule wants {self.kind}"
            case "sender":
                return f"sender {facts.sender} is not {self.sender}"
            case "recipient":
                return f"recipient {who.code} is not {self.recipient}"
            case "business":
                wanted = _set_text(self.business or frozenset())
                return f"business is {facts.business}, rule wants {wanted}"
            case "document_type":
                wanted = _set_text(self.document_type or frozenset())
                return f"document type is {facts.document_type}, rule wants {wanted}"
            case "priority":
                wanted = _set_text(self.priority or frozenset())
                return f"priority is {facts.priority}, rule wants {wanted}"
            case "status_code":
                wanted = _set_text(self.status_code or frozenset())
                return f"status code is {facts.status_code}, rule wants {wanted}"
            case "recipient_hosted":
                state = "hosted" if who.system is not None else "not hosted"
                return f"recipient {who.code} is {state} here"
            case "recipient_system":
                wanted = _set_text(self.recipient_system or frozenset())
                return f"recipient system is {who.system}, rule wants {wanted}"
        return condition

    def covers(self, other: Match) -> bool:
        """True when every packet ``other`` matches is also matched here (conservatively).

        Used to warn about rules whose decision can never apply; a False answer only means
        "could not prove it", never "certainly reachable".
        """
        if self.kind is not None and self.kind != other.kind:
            return False
        for name in ("sender", "recipient"):
            mine: CodeMatch | None = getattr(self, name)
            theirs: CodeMatch | None = getattr(other, name)
            if mine is not None and (theirs is None or not mine.covers(theirs)):
                return False
        for name in ("business", "document_type", "priority", "status_code", "recipient_system"):
            mine_set: frozenset[Any] | None = getattr(self, name)
            theirs_set: frozenset[Any] | None = getattr(other, name)
            if mine_set is not None and (theirs_set is None or not theirs_set <= mine_set):
                return False
        if self.recipient_hosted is not None:
            implied = True if other.recipient_system is not None else other.recipient_hosted
            if implied != self.recipient_hosted:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Refusal:
    """A ``refuse`` action: the packet is turned down with this stable code and message."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in REFUSAL_CODES:
            raise ValueError(f"refusal code {self.code!r} is not one of bus.errors' codes")


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of routes.yaml's ``rules``; ``line`` points back at the file for messages."""

    name: str
    match: Match = Match()
    deliver_to: str | None = None
    copy_to: tuple[str, ...] = ()
    refuse: Refusal | None = None
    description: str = ""
    line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.deliver_to is not None and self.refuse is not None:
            raise ValueError(f"rule {self.name!r}: deliver_to and refuse exclude each other")
        if self.deliver_to is None and self.refuse is None and not self.copy_to:
            raise ValueError(f"rule {self.name!r} has no action")

    @property
    def decides(self) -> bool:
        return self.deliver_to is not None or self.refuse is not None
