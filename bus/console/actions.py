"""An operator's actions on deliveries: resend, park, cancel — one code path for all doors.

The REST API, ``lgsp deliveries`` and the web console all call :func:`act` (one delivery)
or :func:`act_many` (a selection), so a rule such as "a delivery being attempted right
now cannot be parked" holds the same everywhere. Each action needs a reason and an actor,
and is written to the document's history through :meth:`bus.store.Store.audit` in the
same transaction as the state change, so nobody can change a delivery without a trace.

Which states an action accepts::

    resend   parked, refused, pending   → pending, attempt counter back to 0, due now
    park     pending, queued            → parked  (held until an operator resends it)
    cancel   pending, queued, parked,   → cancelled (terminal: never delivered)
             refused

A delivery that is ``delivering`` (a worker holds its lease) or ``awaiting`` (a mailbox
system may be collecting it) is refused with StateConflict: changing it under the
worker's feet would let the bus report one outcome while the recipient got another.

Bulk actions go at a bounded rate (a retry storm caused by an operator is still a retry
storm) and check the stop switch, a row in the database, between items: any operator, in
any process, stops a running bulk action by turning it on.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter

from bus import errors
from bus.store import Store
from bus.store.queries import Viewer, readable
from bus.store.tables import console_switches, deliveries

Action = Literal["resend", "park", "cancel"]
ACTIONS: Final[tuple[Action, ...]] = ("resend", "park", "cancel")

ALLOWED: Final[dict[str, tuple[frozenset[str], str]]] = {
    "resend": (frozenset({"parked", "refused", "pending"}), "pending"),
    "park": (frozenset({"pending", "queued"}), "parked"),
    "cancel": (frozenset({"pending", "queued", "parked", "refused"}), "cancelled"),
}
MAX_REASON: Final = 500
MAX_SELECTION: Final = 500
BULK_PER_SECOND: Final = 10.0
"""Items a bulk action handles per second: a whole parked queue resent at once would hit a
destination that just came back with everything it missed."""
STOP_SWITCH: Final = "bulk_stop"


@dataclass(frozen=True)
class Outcome:
    delivery: str
    document: str
    action: str
    before: str
    after: str


@dataclass
class BulkResult:
    done: list[Outcome] = field(default_factory=list)
    refused: list[tuple[str, errors.LgspError]] = field(default_factory=list)
    stopped: bool = False
    """True when the stop switch ended the run; the ids after it were not touched."""
    untouched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "done": [{"delivery": o.delivery, "document": o.document, "before": o.before,
                      "after": o.after} for o in self.done],
            "refused": [{"delivery": d, **e.to_dict()} for d, e in self.refused],
            "stopped": self.stopped, "untouched": self.untouched}


def check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise errors.InvalidRequest(
            "reason: every operator action needs a reason (it goes into the document's "
            "history); say why, e.g. 'destination back after maintenance'")
    if len(text) > MAX_REASON:
        raise errors.InvalidRequest(f"reason: at most {MAX_REASON} characters")
    return text


def _action(name: str) -> Action:
    for known in ACTIONS:
        if name == known:
            return known
    raise errors.InvalidRequest(f"action: {name!r} is not one of {', '.join(ACTIONS)}")


Tally = Callable[[str, str, str], None]
"""Counts one action: (action, via, outcome), the outcome ``done`` or an error code."""


def act(store: Store, action: str, delivery: str, *, actor: str, reason: str | None,
        viewer: Viewer | None = None, via: str = "api", tally: Tally | None = None
        ) -> Outcome:
    """Applies ``action`` to one delivery, or raises NotFound / StateConflict / InvalidRequest.

    ``viewer`` narrows what exists (an agency officer's scope); None means the whole
    province. The state change is conditional on the state read, so a worker that moved
    the delivery in between makes this a StateConflict, never a lost update.
    """
    try:
        outcome = _act(store, action, delivery, actor=actor, reason=reason, viewer=viewer,
                       via=via)
    except errors.LgspError as exc:
        if tally is not None:
            tally(action if action in ALLOWED else "other", via, exc.code)
        raise
    if tally is not None:
        tally(outcome.action, via, "done")
    return outcome


def _act(store: Store, action: str, delivery: str, *, actor: str, reason: str | None,
         viewer: Viewer | None, via: str) -> Outcome:
    name = _action(action)
    text = check_reason(reason)
    allowed, target = ALLOWED[name]
    d = deliveries.c
    now = time.time()
    with store.begin() as conn:
        row = conn.execute(sa.select(d.document, d.state).where(d.id == delivery)).first()
        if row is not None and viewer is not None \
                and row.document not in readable(conn, [row.document], viewer):
            row = None
        if row is None:
            raise errors.NotFound(f"no delivery {delivery!r}; `lgsp deliveries list` shows "
                                  "the ids")
        before = str(row.state)
        if before not in allowed:
            raise errors.StateConflict(
                f"delivery {delivery} is {before}; {name} applies only to "
                f"{', '.join(sorted(allowed))} deliveries",
                details={"state": before})
        values: dict[str, object] = {"state": target, "updated_at": now}
        if name == "resend":
            values.update(attempts=0, next_attempt_at=now, last_error=None, lease_until=None)
        changed = conn.execute(deliveries.update().where(
            d.id == delivery, d.state == before).values(**values)).rowcount
        if not changed:
            raise errors.StateConflict(
                f"delivery {delivery} changed state while the action was applied; look "
                "again and retry", details={"state": before})
        Store.audit(conn, actor, name, document=row.document, delivery=delivery, at=now,
                    detail={"reason": text, "from": before, "to": target, "via": via})
    return Outcome(delivery=delivery, document=str(row.document), action=name,
                   before=before, after=target)


def stop_switch(store: Store) -> bool:
    """Whether bulk actions are stopped (by any operator, in any process)."""
    with store.engine.connect() as conn:
        on = conn.execute(sa.select(console_switches.c.on).where(
            console_switches.c.name == STOP_SWITCH)).scalar()
    return bool(on)


def set_stop_switch(store: Store, on: bool, *, actor: str) -> None:
    """Turns the bulk stop switch on (running bulk actions stop after their current item,
    new ones are refused) or off; audited as a bus-wide event."""
    now = time.time()
    sw = console_switches.c
    with store.begin() as conn:
        updated = conn.execute(console_switches.update().where(sw.name == STOP_SWITCH)
                               .values(on=on, updated_at=now, updated_by=actor)).rowcount
        if not updated:
            conn.execute(console_switches.insert().values(
                name=STOP_SWITCH, on=on, updated_at=now, updated_by=actor))
        Store.audit(conn, actor, "bulk_stop" if on else "bulk_resume", at=now)


def tally_on(registry: CollectorRegistry) -> Tally:
    """A counter of operator actions on ``registry`` (one per registry, however many apps
    are mounted on it). Process-local like the other counters: actions taken with
    ``lgsp deliveries`` in another process are in the documents' history, not here."""
    counter = _counters.get(registry)
    if counter is None:
        counter = _counters[registry] = Counter(
            "lgsp_operator_actions", "Operator actions on deliveries, by outcome",
            ["action", "via", "outcome"], registry=registry)
    found = counter
    return lambda action, via, outcome: found.labels(action, via, outcome).inc()


_counters: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def act_many(store: Store, action: str, ids: Sequence[str], *, actor: str,
             reason: str | None, viewer: Viewer | None = None, via: str = "api",
             per_second: float = BULK_PER_SECOND,
             sleep: Callable[[float], None] = time.sleep, tally: Tally | None = None
             ) -> BulkResult:
    """:func:`act` on each id at ``per_second`` at most, stopping when the switch is on.

    Validation that concerns the whole selection (action, reason, size, the switch) is
    refused before any item is touched; a refusal of one item is reported with the others.
    """
    _action(action)
    check_reason(reason)
    unique = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not unique:
        raise errors.InvalidRequest("ids: select at least one delivery")
    if len(unique) > MAX_SELECTION:
        raise errors.InvalidRequest(f"ids: at most {MAX_SELECTION} deliveries at once")
    if stop_switch(store):
        raise errors.StateConflict(
            "bulk actions are stopped (the stop switch is on); turn it off first: "
            "console 'Bus state', or `lgsp deliveries bulk-stop off`")
    result = BulkResult()
    interval = 1.0 / per_second
    for index, delivery in enumerate(unique):
        if index:
            sleep(interval)
            if stop_switch(store):
                result.stopped = True
                result.untouched = unique[index:]
                break
        try:
            result.done.append(act(store, action, delivery, actor=actor, reason=reason,
                                   viewer=viewer, via=via, tally=tally))
        except (errors.NotFound, errors.StateConflict) as exc:
            result.refused.append((delivery, exc))
    return result
