"""Where a packet goes: pure functions from (facts, route table, directory) to deliveries.

Routing sits between validation and the one transaction that records deliveries, so it
must be cheap, deterministic and impossible to get wrong by accident: no I/O, no clock
unless the caller leaves ``on`` out, no broker, no database. Everything it needs arrives
as arguments — the packet's :class:`RoutingFacts`, a :class:`RouteTable` (built from
``routes.yaml`` by :mod:`bus.routing.routes`) and anything shaped like a :class:`DirectoryView`
(:class:`bus.directory.Directory`). The same input always gives the same decision, which
is what lets ``lgsp routes explain`` show an administrator exactly what the bus will do.

How one packet is routed
------------------------
Each *addressee* is routed on its own and becomes one delivery (plus copies):

* an edoc's addressees are its ``To`` OrganIds, in packet order;
* a status has one addressee, the OrganId in ``ResponseFor``.

The addressee is first resolved through the directory's successor codes as of the day
``on`` (an old commune code merged in 2025 becomes the new commune's), and the notes of
that resolution travel with the delivery. Rules then see the *effective* code. A code
split between several new ones with no ``split_route`` refuses an edoc
(AmbiguousSuccessor, naming the candidates); a status to it still goes to the old code's
own system while the directory lists it, since it answers a document that code sent.

Rules are tried in file order against (packet, effective addressee):

* the first matching rule with ``deliver_to`` or ``refuse`` decides; later rules cannot
  override it;
* ``copy_to`` accumulates from **every** matching rule, before or after the deciding one,
  so a "copy revocations to the archive" rule works wherever it sits in the file. A
  destination appears at most once per addressee: a copy to the destination that already
  gets the main delivery, or a copy named by two rules, is dropped;
* a refusal refuses the whole packet (raising the error class named by its code), because
  the contract acknowledges a packet only with one delivery per recipient.

When no rule decides, the defaults apply:

* an addressee hosted in the directory goes to its system's destination
  (``default:hosted``, or the status defaults below);
* an addressee not hosted goes to ``defaults.outside`` in routes.yaml, normally the
  national axis (``default:national_axis``); with no such destination the packet is
  refused with :class:`~bus.errors.UnknownRecipient`.

Statuses and the recall request (13)
------------------------------------
A business status answers an earlier document and travels *against* that document's
direction: the recipient (``From``) reports to the original sender, named in
``ResponseFor/OrganId`` (``default:status-to-sender``). Status 13, the recall request, is
the exception edxml.md calls "the reverse": the *original sender* issues it (``From``) and
it travels *with* the original document's direction, to the original recipient — and
the producers put exactly that recipient in ``ResponseFor/OrganId`` (the SDK sample: From
``000.00.00.G22``, ResponseFor/OrganId ``000.00.00.H41``, DocumentId issued by G22). So the
reversal is in who sends and which way the packet flows relative to the document, not in
which field names the addressee: for every status, 13 included, the addressee is
``ResponseFor/OrganId``; 13 is labelled ``default:recall-to-recipient``. A status whose
``ResponseFor/OrganId`` is its own ``From`` is refused (``UnknownRecipient``): for a 13 that
is the tell-tale of a producer that copied the document's issuer instead of the
recipient, and delivering it would send the recall back to the one who asked for it.

The same code path serves :func:`route` and the ``explain`` list, so the explanation can
never drift from the decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any, Final, Literal, Protocol, get_args

from bus.errors import (
    ALL_CODES,
    AmbiguousSuccessor,
    ConfigInvalid,
    LgspError,
    Problem,
    UnknownRecipient,
)

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

REFUSAL_CODES: Final[Mapping[str, type[LgspError]]] = {
    cls.code: cls for cls in ALL_CODES if cls is not ConfigInvalid
}
"""Error codes a ``refuse`` action may name: every packet-facing code of bus.errors."""


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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential back-off; after ``attempts`` a delivery is parked for an operator."""

    attempts: int = 8
    first_delay_s: float = 30
    max_delay_s: float = 3600


@dataclass(frozen=True, slots=True)
class Destination:
    """A named place deliveries go to: one adapter with its options.

    ``options`` are validated by the adapter's own Config when the adapter registry loads;
    routing only needs the name.
    """

    name: str
    adapter: str
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    retry: RetryPolicy | None = None
    description: str = ""
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Defaults:
    """What applies when no rule decides: ``outside`` names the destination for codes the
    directory does not host (None: refuse them), ``retry`` is every destination's policy
    unless it sets its own."""

    outside: str | None = None
    retry: RetryPolicy = RetryPolicy()
    recall_follows_original: bool = False
    """A revoke/update/replace also goes to the original's recipients it does not name."""


@dataclass(frozen=True, slots=True)
class RouteTable:
    """routes.yaml, typed. Built by :func:`bus.routing.routes.load_routes`, or directly in tests."""

    destinations: Mapping[str, Destination] = field(default_factory=dict, hash=False)
    rules: tuple[Rule, ...] = ()
    defaults: Defaults = Defaults()
    source: str | None = None
    warnings: tuple[Problem, ...] = field(default=(), compare=False, hash=False)

    def destination(self, name: str) -> Destination:
        """The destination, or ConfigInvalid: a table built by the loader never gets there."""
        try:
            return self.destinations[name]
        except KeyError:
            raise ConfigInvalid(
                [Problem(f"destination {name!r} is not defined", file=self.source)]
            ) from None

    def retry_for(self, name: str) -> RetryPolicy:
        return self.destination(name).retry or self.defaults.retry


@dataclass(frozen=True, slots=True)
class RoutedDelivery:
    """One (addressee, destination) pair the store turns into a delivery row.

    ``recipient`` is the code as the packet wrote it (what the sender will ask about);
    ``effective_recipient`` is what it resolved to (what the destination is told).
    """

    recipient: str
    effective_recipient: str
    destination: str
    rule: str
    copy: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Every delivery of one packet, addressees in packet order, each main delivery
    followed by its copies."""

    deliveries: tuple[RoutedDelivery, ...]
    on: date

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.destination for d in self.deliveries))

    def for_recipient(self, code: str) -> tuple[RoutedDelivery, ...]:
        """Deliveries whose original or effective addressee is ``code``."""
        return tuple(d for d in self.deliveries if code in (d.recipient, d.effective_recipient))


def _addressees(facts: RoutingFacts) -> tuple[str, ...]:
    if facts.kind == "edoc":
        if not facts.recipients:
            raise UnknownRecipient("the document has no recipient (To)")
        return facts.recipients
    if not facts.response_for:
        raise UnknownRecipient(
            f"status {facts.status_code} has no ResponseFor/OrganId, so it has no addressee"
        )
    if facts.response_for == facts.sender:
        hint = (
            "; for a recall request (13) ResponseFor/OrganId must name the recipient of the"
            " original document, not its issuer"
            if normalize_status_code(facts.status_code) == RECALL_REQUEST
            else ""
        )
        raise UnknownRecipient(
            f"status {facts.status_code} from {facts.sender} is addressed to its own sender"
            f" (ResponseFor/OrganId){hint}",
            details={"recipient": facts.response_for},
        )
    return (facts.response_for,)


def _default_rule(facts: RoutingFacts, hosted: bool) -> str:
    if facts.kind == "status":
        if normalize_status_code(facts.status_code) == RECALL_REQUEST:
            return DEFAULT_RECALL
        return DEFAULT_STATUS
    return DEFAULT_HOSTED if hosted else DEFAULT_OUTSIDE


def _resolved(facts: RoutingFacts, directory: DirectoryView, code: str,
              day: date) -> tuple[str, tuple[str, ...]]:
    try:
        return directory.resolve(code, day)
    except AmbiguousSuccessor as exc:
        if facts.kind != "status" or directory.host_of(code) is None:
            raise
        return code, (f"{exc.message.split(';')[0]}; a status answers a document {code} sent,"
                      " so it goes to that code's own system",)


def route(
    facts: RoutingFacts,
    table: RouteTable,
    directory: DirectoryView,
    *,
    on: date | None = None,
    explain: list[str] | None = None,
) -> RoutingDecision:
    """Decide every delivery of one packet, or raise the refusal (see the module docstring).

    ``on`` is the day successor codes are resolved for; ingress passes the day it accepted
    the packet so that a retried routing gives the same answer. Left out, it is today,
    which is the only impure thing here. When ``explain`` is a list, a human account of
    every step is appended to it, even if the call ends in a refusal.
    """
    day = on if on is not None else date.today()
    say = explain.append if explain is not None else None
    if say:
        say(f"packet: {facts.describe()}; codes resolved as of {day.isoformat()}")
    deliveries: list[RoutedDelivery] = []
    index: dict[tuple[str, str], int] = {}

    def add(delivery: RoutedDelivery) -> None:
        key = (delivery.effective_recipient, delivery.destination)
        at = index.get(key)
        if at is None:
            index[key] = len(deliveries)
            deliveries.append(delivery)
            if say:
                what = "copy" if delivery.copy else "deliver"
                say(f"  {what} -> {delivery.destination} ({delivery.rule})")
            return
        first = deliveries[at]
        if delivery.recipient != first.recipient and not delivery.copy:
            note = f"also addressed as {delivery.recipient}"
            if note not in first.notes:
                deliveries[at] = replace(first, notes=(*first.notes, note))
        if say:
            say(f"  {delivery.destination}: already receives this for {first.effective_recipient}")

    for original in _addressees(facts):
        effective, trail = _resolved(facts, directory, original, day)
        system = directory.host_of(effective)
        who = Addressee(facts, effective, system)
        if say:
            say(f"addressee {original}")
            for note in trail:
                say(f"  {note}")
            where = f"hosted by system {system}" if system else "not hosted in the directory"
            say(f"  effective code {effective}, {where}")

        decided: Rule | None = None
        copies: list[tuple[str, str]] = []
        for number, rule in enumerate(table.rules, start=1):
            failed = rule.match.first_failure(who)
            if failed is not None:
                if say:
                    why = rule.match.describe_failure(failed, who)
                    say(f"  rule {number} {rule.name}: no match ({why})")
                continue
            copies.extend((name, rule.name) for name in rule.copy_to)
            takes = decided is None and rule.decides
            if takes:
                decided = rule
            if say:
                actions = []
                if rule.deliver_to is not None:
                    actions.append(f"deliver_to {rule.deliver_to}")
                if rule.refuse is not None:
                    actions.append(f"refuse {rule.refuse.code}")
                if rule.copy_to:
                    actions.append("copy_to " + ", ".join(rule.copy_to))
                verdict = (
                    "decides"
                    if takes
                    else ("matches, decision already taken" if rule.decides else "matches")
                )
                say(f"  rule {number} {rule.name}: {verdict}: {'; '.join(actions)}")

        notes = list(trail)
        if decided is not None and decided.refuse is not None:
            refusal = decided.refuse
            if say:
                say(f"  refused by rule {decided.name}: {refusal.code}")
            raise REFUSAL_CODES[refusal.code](
                refusal.message,
                details={"rule": decided.name, "recipient": original},
            )
        if decided is not None and decided.deliver_to is not None:
            target, chosen_by = decided.deliver_to, decided.name
            notes.append(f"chosen by rule {decided.name}")
        elif system is not None:
            target = directory.destination_of(system) or ""
            if not target:
                raise ConfigInvalid(
                    [Problem(f"system {system!r} (hosting {effective}) has no destination")]
                )
            chosen_by = _default_rule(facts, hosted=True)
            notes.append(f"{effective} is hosted by system {system}")
        elif table.defaults.outside is not None:
            target, chosen_by = table.defaults.outside, _default_rule(facts, hosted=False)
            notes.append(f"{effective} is not hosted in this province: sent to {target}")
        else:
            if say:
                say("  no rule decides, not hosted, and routes.yaml has no defaults.outside")
            raise UnknownRecipient(
                f"recipient {original} is not in the agency directory and no route leads"
                " outside the province",
                details={"recipient": original},
            )
        if say and decided is None:
            say(f"  no rule decides: {chosen_by}")
        table.destination(target)
        add(RoutedDelivery(original, effective, target, chosen_by, False, tuple(notes)))
        for name, rule_name in copies:
            table.destination(name)
            note = f"copy required by rule {rule_name}"
            add(RoutedDelivery(original, effective, name, rule_name, True, (*trail, note)))

    return RoutingDecision(tuple(deliveries), day)
