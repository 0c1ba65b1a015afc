"""The status-feedback report: per recipient agency and period, how many documents it
received, what share it answered with 01 (arrived), 03 (registered) and 06 (completed),
the median time to each, and the documents it never answered.

It is the figure the Government Office follows for every province ("76 units have
reported processing status, 2 have not"). Definitions, so the figure can be defended:

* a document *received* by an agency is an edoc delivered to it (transport state
  ``delivered``; copies a route made and withdrawn deliveries do not count), accepted by
  the bus inside the period ``[from, to)``;
* an agency *answered* a document when it reported any of 01–06 on it, under the code the
  document was addressed to or the code it was delivered to (a merged commune's successor);
* times run from the bus's acceptance of the document to the bus's receipt of the first
  status with that code (the sender's clock is not trusted; the recipient's delivery
  time is not comparable across mailbox and push systems);
* an agency *reports* when it answered at least one of the documents it received.

Everything is computed by the database as aggregates and window functions (medians by
row number, no ``percentile_cont``, so SQLite and PostgreSQL run the same SQL); Python
only formats the few rows that come back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.store.queries import Viewer, iso, parse_time
from bus.store.tables import business_statuses, deliveries, documents

TRACKED: Final = ("01", "03", "06")
ANSWERS: Final = ("01", "02", "03", "04", "05", "06")
FORMATS: Final = ("json", "csv", "table")
DEFAULT_UNANSWERED: Final = 100


@dataclass(frozen=True)
class Period:
    start: float
    end: float


def period(start: str | None, end: str | None, zone: tzinfo, *,
           today: date | None = None) -> Period:
    """``start``/``end``: a day (YYYY-MM-DD, in the province's zone; ``end`` inclusive),
    an ISO 8601 time with offset or epoch seconds (``end`` exclusive). Default: the
    last 30 days up to the end of today."""
    day = today or datetime.now(zone).date()

    def at(value: str, name: str, *, inclusive_day: bool) -> float:
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            return parse_time(value, name)
        moment = datetime.combine(parsed + timedelta(days=1 if inclusive_day else 0), time(),
                                  zone)
        return moment.timestamp()

    high = at(end, "to", inclusive_day=True) if end else \
        datetime.combine(day + timedelta(days=1), time(), zone).timestamp()
    low = at(start, "from", inclusive_day=False) if start else high - 30 * 86400
    if high <= low:
        raise errors.InvalidRequest("the period is empty: 'to' is not after 'from'")
    return Period(low, high)


def _received(span: Period, viewer: Viewer, agency: str | None) -> sa.CTE:
    """One row per (agency, document) received in the period, with the first time of
    each tracked code and whether the agency answered at all."""
    d, dl, bs = documents.c, deliveries.c, business_statuses.c

    def by_agency(*codes: str) -> sa.ColumnElement[bool]:
        return sa.and_(bs.document == dl.document,
                       bs.organ_id.in_([dl.effective_recipient, dl.recipient]),
                       bs.code.in_(codes))

    firsts = [sa.select(sa.func.min(bs.received_at)).where(by_agency(code))
              .correlate(deliveries).scalar_subquery().label(f"t{code}")
              for code in TRACKED]
    where: list[sa.ColumnElement[bool]] = [
        d.kind == "edoc", dl.is_copy.is_(False), dl.state == "delivered",
        d.received_at >= span.start, d.received_at < span.end]
    if agency:
        where.append(sa.or_(dl.effective_recipient == agency, dl.recipient == agency))
    if not viewer.operator:
        hosted = sorted(viewer.hosted)
        where.append(sa.or_(dl.effective_recipient.in_(hosted), dl.recipient.in_(hosted)))
    return (sa.select(dl.effective_recipient.label("agency"), dl.document,
                      d.document_id, d.sender, d.subject, d.received_at, *firsts,
                      sa.exists().where(by_agency(*ANSWERS)).label("answered"))
            .join(documents, d.id == dl.document).where(*where)
            .cte("received"))


def _median(received: sa.CTE, code: str) -> sa.Subquery:
    """The median of (first ``code`` − acceptance) per agency: rows numbered by duration;
    the middle one (odd count) or the mean of the two middle ones (even count) is where
    2·rank is count, count+1 or count+2 — integer arithmetic both databases agree on."""
    r = received.c
    took = (r[f"t{code}"] - r.received_at).label("took")
    ranked = (sa.select(r.agency, took,
                        sa.func.row_number().over(partition_by=r.agency,
                                                  order_by=took).label("rank"),
                        sa.func.count().over(partition_by=r.agency).label("n"))
              .where(r[f"t{code}"].is_not(None)).subquery(f"ranked{code}"))
    k = ranked.c
    return (sa.select(k.agency, sa.func.avg(k.took).label("median"))
            .where(sa.or_(2 * k.rank == k.n, 2 * k.rank == k.n + 1, 2 * k.rank == k.n + 2))
            .group_by(k.agency).subquery(f"median{code}"))


def feedback(engine: Engine, span: Period, viewer: Viewer, *, agency: str | None = None,
             names: Mapping[str, str] | None = None,
             unanswered_limit: int = DEFAULT_UNANSWERED) -> dict[str, Any]:
    """The report as plain data (what ``json`` prints; ``csv`` and ``table`` format it)."""
    received = _received(span, viewer, agency)
    r = received.c
    answered = sa.func.sum(sa.case((r.answered, 1), else_=0))
    totals = (sa.select(r.agency, sa.func.count().label("received"),
                        answered.label("answered"),
                        *(sa.func.count(r[f"t{c}"]).label(f"n{c}") for c in TRACKED))
              .group_by(r.agency).subquery("totals"))
    medians = [_median(received, c) for c in TRACKED]
    t = totals.c
    query = sa.select(t.agency, t.received, t.answered, *(t[f"n{c}"] for c in TRACKED),
                      *(m.c.median.label(f"m{c}") for c, m in zip(TRACKED, medians,
                                                                  strict=True)))
    joined: sa.FromClause = totals
    for m in medians:
        joined = joined.outerjoin(m, m.c.agency == t.agency)
    query = query.select_from(joined).order_by(t.agency)
    ranked = (sa.select(r.agency, r.document, r.document_id, r.sender, r.subject,
                        r.received_at,
                        sa.func.row_number().over(partition_by=r.agency,
                                                  order_by=(r.received_at, r.document))
                        .label("rank"))
              .where(sa.not_(r.answered)).subquery("unanswered"))
    u = ranked.c
    silent = (sa.select(u.agency, u.document, u.document_id, u.sender, u.subject,
                        u.received_at)
              .where(u.rank <= unanswered_limit).order_by(u.agency, u.received_at))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        never = conn.execute(silent).all()
    listed: dict[str, list[dict[str, Any]]] = {}
    for n in never:
        listed.setdefault(n.agency, []).append({
            "id": n.document, "document_id": n.document_id, "sender": n.sender,
            "subject": n.subject, "received_at": iso(n.received_at)})
    agencies = []
    for row in rows:
        entry: dict[str, Any] = {
            "agency": row.agency, "name": (names or {}).get(row.agency),
            "received": int(row.received), "answered": int(row.answered or 0),
            "never_answered": int(row.received) - int(row.answered or 0)}
        for code in TRACKED:
            count = int(getattr(row, f"n{code}") or 0)
            median = getattr(row, f"m{code}")
            entry[f"answered_{code}"] = count
            entry[f"share_{code}"] = round(count / int(row.received), 4) if row.received else 0.0
            entry[f"median_{code}_s"] = round(float(median), 1) if median is not None else None
        entry["unanswered_documents"] = listed.get(row.agency, [])
        agencies.append(entry)
    reporting = sum(1 for a in agencies if a["answered"])
    return {
        "period": {"from": iso(span.start), "to": iso(span.end)},
        "summary": {
            "agencies": len(agencies), "reporting": reporting,
            "not_reporting": len(agencies) - reporting,
            "fully_answered": sum(1 for a in agencies if not a["never_answered"]),
            "documents": sum(a["received"] for a in agencies),
            "never_answered": sum(a["never_answered"] for a in agencies)},
        "agencies": agencies,
    }


CSV_COLUMNS: Final = ("agency", "name", "received", "answered", "never_answered",
                      *(f"{k}_{c}" for c in TRACKED for k in ("answered", "share")),
                      *(f"median_{c}_s" for c in TRACKED), "unanswered_document_ids")


def as_csv(report: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in report["agencies"]:
        ids = " ".join(d["document_id"] for d in a["unanswered_documents"])
        writer.writerow([*(a[c] if a[c] is not None else "" for c in CSV_COLUMNS[:-1]), ids])
    return out.getvalue()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _local(stamp: str, zone: tzinfo | None) -> str:
    moment = datetime.fromisoformat(stamp)
    return (moment.astimezone(zone) if zone else moment).strftime("%Y-%m-%d %H:%M")


def as_table(report: Mapping[str, Any], zone: tzinfo | None = None) -> str:
    """For a reader: times in the province's ``zone`` (UTC when None)."""
    s, p = report["summary"], report["period"]
    where = f" ({zone})" if zone else " (UTC)"
    lines = [f"Status feedback {_local(p['from'], zone)} .. {_local(p['to'], zone)}{where}",
             f"{s['reporting']} of {s['agencies']} agencies reported processing status, "
             f"{s['not_reporting']} did not; {s['never_answered']} of {s['documents']} "
             "documents never answered", ""]
    head = ("agency", "recv", "ans", "01", "03", "06", "t01", "t03", "t06", "never")
    widths = (16, 5, 5, 5, 5, 5, 6, 6, 6, 5)
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for a in report["agencies"]:
        cells = (a["agency"], a["received"], a["answered"],
                 *(f"{a[f'share_{c}']:.0%}" for c in TRACKED),
                 *(_duration(a[f"median_{c}_s"]) for c in TRACKED), a["never_answered"])
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(cells, widths, strict=True))
                     .rstrip())
    for a in report["agencies"]:
        if a["unanswered_documents"]:
            lines += ["", f"never answered by {a['agency']}"
                      + (f" ({a['name']})" if a["name"] else "") + ":"]
            lines += [f"  {_local(d['received_at'], zone)}  {d['document_id']}  "
                      f"{d['subject'] or ''}"
                      .rstrip() for d in a["unanswered_documents"]]
    return "\n".join(lines) + "\n"


def render(report: Mapping[str, Any], fmt: str, zone: tzinfo | None = None) -> str:
    import json

    if fmt == "csv":
        return as_csv(report)
    if fmt == "table":
        return as_table(report, zone)
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def agency_names(agencies: Mapping[str, Any]) -> dict[str, str]:
    return {code: getattr(a, "name", "") for code, a in agencies.items()}


__all__: Sequence[str] = ("FORMATS", "Period", "feedback", "period", "render")
