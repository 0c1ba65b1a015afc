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

from dataclasses import replace
from datetime import date

from bus.errors import AmbiguousSuccessor, ConfigInvalid, Problem, UnknownRecipient
from bus.routing.facts import (
    BUSINESS_BY_DOCTYPE,
    BUSINESSES,
    DEFAULT_HOSTED,
    DEFAULT_OUTSIDE,
    DEFAULT_RECALL,
    DEFAULT_STATUS,
    KINDS,
    RECALL_REQUEST,
    Business,
    DirectoryView,
    Kind,
    RoutingFacts,
    business_from_doctype,
    normalize_status_code,
)
from bus.routing.rules import REFUSAL_CODES, Addressee, CodeMatch, Match, Refusal, Rule
from bus.routing.table import (
    Defaults,
    Destination,
    RetryPolicy,
    RoutedDelivery,
    RouteTable,
    RoutingDecision,
)

__all__ = [
    "BUSINESSES", "BUSINESS_BY_DOCTYPE", "DEFAULT_HOSTED", "DEFAULT_OUTSIDE", "DEFAULT_RECALL",
    "DEFAULT_STATUS", "KINDS", "RECALL_REQUEST", "REFUSAL_CODES",
    "Addressee", "Business", "CodeMatch", "Defaults", "Destination", "DirectoryView", "Kind",
    "Match", "Refusal", "RetryPolicy", "RouteTable", "RoutedDelivery", "RoutingDecision",
    "RoutingFacts", "Rule", "business_from_doctype", "normalize_status_code", "route",
]


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
