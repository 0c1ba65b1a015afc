"""The deadlines' doors: two REST endpoints and ``lgsp deadlines``.

``GET /api/v1/edocs/{id}/deadlines`` gives each recipient's deadlines and where it
stands; ``GET /api/v1/overdue`` lists what is late. Both follow the read side's
visibility (:func:`bus.store.queries.visible_to`): a system sees the documents it sent
and those addressed to organisations it hosts, an operator everything, and an id it may
not read is ``NotFound``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from bus import errors
from bus.api import API_KEY_HEADER, admit, viewer_for
from bus.app import Bus
from bus.errors import Problem
from bus.lifecycle.deadlines import STAGES
from bus.lifecycle.overdue import DeadlineBook, DeliveryDeadlines
from bus.store.queries import Viewer, iso, parse_time, visible_to
from bus.store.tables import documents

_api_key = APIKeyHeader(  # one scheme in the OpenAPI document: the same as bus.api.rest's
    name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False,
    description="The connected system's own key (development: dev-<system>-key).")
Stage = Literal["arrival", "acceptance", "completion"]


class DocumentDeadlines(BaseModel):
    document: str
    at: str
    overdue: bool
    deliveries: list[DeliveryDeadlines]


class OverdueList(BaseModel):
    at: str
    count: int
    items: list[DeliveryDeadlines]


def document_deadlines(book: DeadlineBook, doc_id: str, viewer: Viewer, *,
                       now: float | None = None) -> DocumentDeadlines:
    at = book.clock() if now is None else now
    with book.engine.connect() as conn:
        seen = conn.execute(sa.select(documents.c.id).where(
            documents.c.id == doc_id, visible_to(viewer))).first()
        if seen is None:
            raise errors.NotFound(f"no document {doc_id!r} is visible to system "
                                  f"'{viewer.system}'")
        rows = book.for_document(conn, doc_id, now=at)
    return DocumentDeadlines(document=doc_id, at=iso(at) or "",
                             overdue=any(r.overdue for r in rows), deliveries=rows)


def deadlines_router(bus: Bus) -> APIRouter:
    router = APIRouter()

    def caller(request: Request, key: str | None) -> Viewer:
        return viewer_for(bus, admit(bus, request, key))

    @router.get("/api/v1/edocs/{id}/deadlines", tags=["documents"],
                response_model=DocumentDeadlines,
                summary="Each recipient's working-day deadlines for 01, 03 and 06")
    def get_deadlines(request: Request, id: str,
                      key: str | None = Security(_api_key)) -> DocumentDeadlines:
        """Fixed when the bus accepted the document; states: met, late, open, overdue,
        closed (the recipient refused it, 02, or accepted its recall, 15)."""
        return document_deadlines(bus.deadlines, id, caller(request, key))

    @router.get("/api/v1/overdue", tags=["documents"], response_model=OverdueList,
                summary="Recipient deliveries past a deadline without the answering status")
    def list_overdue(
        request: Request,
        key: Annotated[str | None, Security(_api_key)] = None,
        destination: Annotated[str | None, Query(max_length=64)] = None,
        stage: Annotated[Stage | None, Query()] = None,
        at: Annotated[str | None, Query(
            description="judge as of this time (ISO 8601 with offset, or epoch seconds); "
                        "default now")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 500,
    ) -> OverdueList:
        viewer = caller(request, key)
        when = parse_time(at, "at") if at else bus.deadlines.clock()
        items = bus.deadlines.overdue(viewer, now=when, destination=destination, stage=stage,
                                      limit=limit)
        return OverdueList(at=iso(when) or "", count=len(items), items=items)

    return router


# ---- the command line ------------------------------------------------------------------

def _book(args: argparse.Namespace) -> tuple[DeadlineBook, Any]:
    """The deadline book on the configured database, without a whole Bus (whose logging
    would mix with the report on standard output)."""
    from bus.clierrors import existing_engine
    from bus.lifecycle.deadlines import load_policy
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    files = settings.lifecycle_files()
    policy = load_policy(*files, settings.zone) if files else None
    engine = existing_engine(settings)  # the bus's database, never a new one
    return DeadlineBook(engine, lambda: policy), settings.zone


def _local(value: str | None, zone: Any) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def overdue_rows(items: Sequence[DeliveryDeadlines], zone: Any) -> list[dict[str, str]]:
    """One line per overdue stage, in local time: what a clerk reads and a sheet sorts."""
    rows = []
    for item in items:
        for stage in item.stages:
            if stage.state != "overdue":
                continue
            rows.append({"document": item.document, "recipient": item.effective_recipient,
                         "destination": item.destination, "stage": stage.stage,
                         "status": stage.code, "due": _local(stage.due, zone),
                         "late_working_hours": f"{stage.overdue_working_hours or 0:g}",
                         "rule": item.rule or ""})
    return rows


def _print_table(rows: list[dict[str, str]], out: Any) -> None:
    if not rows:
        print("no overdue deliveries", file=out)
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys), file=out)
    for row in rows:
        print("  ".join(row[k].ljust(widths[k]) for k in keys), file=out)
    print(f"{len(rows)} overdue stage(s)", file=out)


def cmd_overdue(args: argparse.Namespace) -> int:
    book, zone = _book(args)
    try:
        when = parse_time(args.at, "--at") if args.at else None
        items = book.overdue(Viewer(system="cli", operator=True), now=when,
                             destination=args.destination, stage=args.stage, limit=args.limit)
    finally:
        book.engine.dispose()
    rows = overdue_rows(items, zone)
    if args.format == "json":
        print(json.dumps([item.model_dump() for item in items], ensure_ascii=False, indent=2))
    elif args.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else
                                ["document", "recipient", "destination", "stage", "status",
                                 "due", "late_working_hours", "rule"])
        writer.writeheader()
        writer.writerows(rows)
        print(buffer.getvalue(), end="")
    else:
        _print_table(rows, sys.stdout)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    import time

    book, _ = _book(args)
    try:
        if book.policy() is None:
            print("no calendar.yaml and deadlines.yaml: nothing to compute", file=sys.stderr)
            return 1
        done = book.backfill(since=time.time() - args.days * 86400, limit=args.limit)
    finally:
        book.engine.dispose()
    print(f"deadlines recorded for {done} recipient deliveries")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bus.lifecycle.deadlines import load_policy
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None))
    files = settings.lifecycle_files()
    if files is None:
        print("no calendar.yaml and deadlines.yaml beside the directory: the bus "
              "computes no deadlines")
        return 0
    try:
        policy = load_policy(*files, settings.zone)
    except errors.ConfigInvalid as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s)")
        return 1
    calendar = policy.calendar
    print(f"{files[0]}: {calendar.country}, {len(calendar.office_hours)} office period(s) "
          f"({calendar.day_seconds / 3600:g} h a day), {len(calendar.days_off)} extra day(s) "
          f"off, {len(calendar.working_days)} make-up working day(s)")
    print(f"{files[1]}: {len(policy.rules)} rule(s): "
          + ", ".join(rule.name for rule in policy.rules))
    return 0


def lifecycle_problems(directory: str | Path) -> list[Problem]:
    """What a reload would refuse in calendar.yaml and deadlines.yaml beside the directory
    (``lgsp routes check`` reports them with the routes: the bus reloads them together)."""
    from bus.lifecycle.deadlines import load_policy

    calendar = Path(directory).parent / "calendar.yaml"
    rules = Path(directory).parent / "deadlines.yaml"
    if not (calendar.exists() or rules.exists()):
        return []
    try:
        load_policy(calendar, rules, ZoneInfo("Asia/Ho_Chi_Minh"))
    except errors.ConfigInvalid as exc:
        return list(exc.problems)
    return []


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``lgsp deadlines overdue|check``."""
    deadlines = sub.add_parser("deadlines", help="working-day deadlines of recipients")
    dsub = deadlines.add_subparsers(dest="deadlines_command", required=True)
    overdue = dsub.add_parser("overdue", help="recipient deliveries past a deadline "
                              "without the answering status (01, 03, 06)")
    common(overdue)
    overdue.add_argument("--format", choices=["table", "json", "csv"], default="table")
    overdue.add_argument("--destination")
    overdue.add_argument("--stage", choices=list(STAGES))
    overdue.add_argument("--at", help="judge as of this time (ISO 8601 with offset)")
    overdue.add_argument("--limit", type=int, default=500)
    overdue.set_defaults(func=cmd_overdue)
    backfill = dsub.add_parser("backfill", help="compute deadlines for recent documents "
                               "that have none (accepted before an upgrade, or whose "
                               "recording failed)")
    common(backfill)
    backfill.add_argument("--days", type=float, default=90,
                          help="documents accepted in the last N days (default 90)")
    backfill.add_argument("--limit", type=int, default=1000)
    backfill.set_defaults(func=cmd_backfill)
    check = dsub.add_parser("check", help="check calendar.yaml and deadlines.yaml, with lines")
    check.add_argument("--config", help="settings file (YAML); LGSP_* variables override it")
    check.set_defaults(func=cmd_check)
