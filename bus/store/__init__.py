"""The truth about documents and deliveries: the transport state machine and its writes.

The database, not the broker, decides what has happened. A success answer to a sender
is given only after :meth:`Store.accept` has committed the document with one delivery row
per recipient; from then on every (document, recipient) walks the transport state
machine below until it reaches a terminal state, and every step is an audit event::

    pending ──publish──► queued ──claim──► delivering ──► delivered   (terminal)
       ▲                                      │ ├──────► refused     (terminal)
       └──────────── retry at t ◄─────────────┘ ├──────► parked      (terminal until
                                                │                      an operator requeues)
                                                └──────► awaiting ──ack──► delivered
                                                         (in a mailbox   └─fail──► refused
                                                          the system polls)

    pending, queued, awaiting ──recall accepted──► withdrawn   (terminal; bus.lifecycle)

Transitions are conditional ``UPDATE … WHERE state = …`` statements, so two workers (or
a worker and a sweeper) racing on the same delivery cannot both win: broker duplicates
and crashes are absorbed here. Business statuses (01…16) are a separate table: they
describe what the recipient's clerk did, not whether the bytes arrived.

The same code runs on SQLite (WAL, the embedded default) and PostgreSQL (scale-out); the
tables are in :mod:`bus.store.tables`, the hot statements run through :mod:`bus.store.statements`.
"""

from __future__ import annotations

from bus.store.accept import Accepting
from bus.store.outages import outage, outage_refused
from bus.store.rows import EVENT_COLUMNS, Accepted, Claim, Due, NewDelivery, event_row
from bus.store.transitions import Transitions

__all__ = [
    "EVENT_COLUMNS",
    "Accepted",
    "Claim",
    "Due",
    "NewDelivery",
    "Store",
    "event_row",
    "outage",
    "outage_refused",
]


class Store(Accepting, Transitions):
    """The accept path (:mod:`bus.store.accept`) and the transitions after it
    (:mod:`bus.store.transitions`) over one database (:mod:`bus.store.core`)."""
