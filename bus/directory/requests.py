"""Directory changes that local systems ask for, and that an administrator decides.

The axis SDK lets a system register a child agency (registerAgency) or remove one
(deleteAgency). The bus never applies such a request by itself: the directory is both
the address book and the access list (a system may send only as the agencies listed
under it), and it is a reviewed file, config/directory.yaml. A typo in an identifier
applied at once would route a province's mail to nobody, or let a system speak for an
agency it does not host. So a request is recorded ``pending``; an administrator sees it
(``lgsp directory requests list``), approves or rejects it with a note, and an approved
request takes effect when the directory file carries it — ``approve`` prints the exact
lines to add or remove. ``list`` shows whether the directory already does.
"""

from __future__ import annotations

import argparse
import getpass
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.directory import Directory
from bus.store.tables import agency_requests

__all__ = ["AgencyRequest", "add_cli", "decide", "directory_edit", "in_effect",
           "list_requests", "submit", "withdraw"]

STATES: Final = ("pending", "approved", "rejected", "withdrawn")


@dataclass(frozen=True)
class AgencyRequest:
    id: int
    action: str
    code: str
    name: str
    parent: str | None
    mail: str | None
    system: str
    requested_by: str
    state: str
    created_at: float
    decided_at: float | None
    decided_by: str | None
    note: str | None

    @classmethod
    def of(cls, row: Any) -> AgencyRequest:
        return cls(**{k: row._mapping[k] for k in cls.__dataclass_fields__})


def _pending(conn: sa.Connection, action: str, code: str, system: str) -> AgencyRequest | None:
    t = agency_requests.c
    row = conn.execute(sa.select(agency_requests).where(
        t.action == action, t.code == code, t.system == system, t.state == "pending")
        .order_by(t.id).limit(1)).first()
    return AgencyRequest.of(row) if row is not None else None


def submit(engine: Engine, *, action: str, code: str, name: str, system: str,
           requested_by: str, parent: str | None = None,
           mail: str | None = None) -> tuple[AgencyRequest, bool]:
    """Records a pending request; the same one pending already is returned, not doubled."""
    with engine.begin() as conn:
        found = _pending(conn, action, code, system)
        if found is not None:
            return found, True
        inserted = conn.execute(agency_requests.insert().values(
            action=action, code=code, name=name, parent=parent or None, mail=mail or None,
            system=system, requested_by=requested_by, state="pending",
            created_at=time.time())).inserted_primary_key
        assert inserted is not None
        row = conn.execute(sa.select(agency_requests).where(
            agency_requests.c.id == inserted[0])).one()
    return AgencyRequest.of(row), False


def withdraw(engine: Engine, *, code: str, system: str, by: str) -> AgencyRequest | None:
    """A system removing an agency it only asked to register withdraws that request."""
    with engine.begin() as conn:
        found = _pending(conn, "register", code, system)
        if found is None:
            return None
        conn.execute(agency_requests.update().where(agency_requests.c.id == found.id).values(
            state="withdrawn", decided_at=time.time(), decided_by=by[:64],
            note="withdrawn by deleteAgency"))
    return found


def list_requests(engine: Engine, *, state: str | None = "pending",
                  limit: int = 100) -> list[AgencyRequest]:
    query = sa.select(agency_requests).order_by(agency_requests.c.id).limit(limit)
    if state is not None:
        query = query.where(agency_requests.c.state == state)
    with engine.connect() as conn:
        return [AgencyRequest.of(r) for r in conn.execute(query)]


def decide(engine: Engine, request_id: int, *, approve: bool, actor: str,
           note: str = "") -> AgencyRequest:
    """pending → approved / rejected; anything else is refused, saying what it is."""
    t = agency_requests.c
    with engine.begin() as conn:
        changed = conn.execute(agency_requests.update().where(
            t.id == request_id, t.state == "pending").values(
            state="approved" if approve else "rejected", decided_at=time.time(),
            decided_by=actor[:64], note=note or None)).rowcount
        row = conn.execute(sa.select(agency_requests).where(t.id == request_id)).first()
    if row is None:
        raise errors.NotFound(f"no directory request {request_id}")
    found = AgencyRequest.of(row)
    if not changed:
        raise errors.InvalidRequest(f"request {request_id} is already {found.state}")
    return found


def in_effect(request: AgencyRequest, directory: Directory) -> bool:
    """Whether the directory already says what the request asks."""
    if request.action == "register":
        return directory.host_of(request.code) == request.system
    return request.code not in directory.agencies


def directory_edit(request: AgencyRequest, source: str) -> str:
    """The change to make in the directory file for an approved request."""
    if request.action == "delete":
        return (f"remove agencies/\"{request.code}\" from {source} (or, if documents must "
                f"follow it elsewhere, list it under successors), then `lgsp routes check`")
    lines = [f"add under agencies: in {source}, then `lgsp routes check`:",
             f"  \"{request.code}\":", f"    name: {request.name}",
             f"    system: {request.system}"]
    if request.parent:
        lines.append(f"    parent: \"{request.parent}\"")
    return "\n".join(lines)


# ---- the command line ------------------------------------------------------------------

def _engine_and_directory(args: argparse.Namespace) -> tuple[Engine, Directory | None, str]:
    from bus.clierrors import existing_engine
    from bus.directory import load_directory
    from bus.settings import load_settings
    from bus.store.tables import metadata

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    engine = existing_engine(settings)
    metadata.create_all(engine, tables=[agency_requests])
    try:
        directory: Directory | None = load_directory(settings.directory)
    except errors.ConfigInvalid:
        directory = None
    return engine, directory, str(settings.directory)


def _show(request: AgencyRequest, directory: Directory | None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(request.created_at))
    done = "" if directory is None else \
        ("  [in the directory]" if in_effect(request, directory) else "  [not in the directory]")
    what = (f"{request.action} {request.code} \"{request.name}\""
            + (f" parent={request.parent}" if request.parent else "")
            + (f" mail={request.mail}" if request.mail else ""))
    decided = f" by {request.decided_by}" if request.decided_by else ""
    note = f": {request.note}" if request.note else ""
    return (f"#{request.id}  {request.state:9s} {when}  {what}  system={request.system} "
            f"asked by {request.requested_by}{done}"
            + (f"\n    {request.state}{decided}{note}" if request.state != "pending" else ""))


def cmd_list(args: argparse.Namespace) -> int:
    engine, directory, _ = _engine_and_directory(args)
    rows = list_requests(engine, state=None if args.all else args.state, limit=args.limit)
    for request in rows:
        print(_show(request, directory))
    print(f"{len(rows)} request(s)")
    return 0


def _cmd_decide(approve: bool) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        engine, directory, source = _engine_and_directory(args)
        try:
            request = decide(engine, args.id, approve=approve,
                             actor=f"operator:{getpass.getuser()}", note=args.note or "")
        except errors.LgspError as exc:
            print(f"{exc.code}: {exc.message}")
            return 1
        print(_show(request, directory))
        if approve and not (directory is not None and in_effect(request, directory)):
            print(directory_edit(request, source))
        return 0
    return run


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``lgsp directory requests list|approve|reject``."""
    directory = sub.add_parser("directory", help="the agency directory")
    dsub = directory.add_subparsers(dest="directory_command", required=True)
    requests = dsub.add_parser("requests", help="agencies local systems asked to register "
                               "or remove (axis facade registerAgency / deleteAgency)")
    rsub = requests.add_subparsers(dest="requests_command", required=True)
    listing = rsub.add_parser("list", help="requests, oldest first (default: pending)")
    common(listing)
    listing.add_argument("--state", choices=STATES, default="pending")
    listing.add_argument("--all", action="store_true", help="every state")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=cmd_list)
    for name, approve, helptext in (
            ("approve", True, "accept a request; prints the directory change to make"),
            ("reject", False, "refuse a request, saying why (--note)")):
        cmd = rsub.add_parser(name, help=helptext)
        common(cmd)
        cmd.add_argument("id", type=int)
        cmd.add_argument("--note", help="why (shown with the request)")
        cmd.set_defaults(func=_cmd_decide(approve))
    from bus.directory.sync_cli import add_cli as add_sync_cli

    add_sync_cli(dsub, common)
