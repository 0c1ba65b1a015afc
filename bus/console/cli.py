"""``lgsp deliveries resend|park|cancel|bulk-stop`` and ``lgsp users …``.

The delivery commands call :mod:`bus.console.actions`, the code the REST API and the
console call; several ids go through the rate-limited bulk path with its stop switch.
The actor in the history is ``cli:<login name>``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from bus import errors

Common = Callable[[argparse.ArgumentParser], None]


def _store(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The bus's store as ``lgsp serve`` with the same options would open it.

    Only ``lgsp users`` may start an embedded database (the first user is made before the
    first start); acting on deliveries in a database that does not exist is a mistake in
    ``--data-dir`` or ``--config``, told in one line instead of an empty new database.
    """
    from bus.settings import load_settings
    from bus.store import Store, outage
    from bus.store.tables import create_engine

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    if not create:
        from bus.clierrors import existing_engine

        return Store(existing_engine(settings))  # the bus's database, never a new one
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(create_engine(settings.effective_database_url))
    try:
        store.create_schema()
    except Exception as exc:
        refusal = outage(exc)
        if refusal is None:
            raise
        raise refusal from exc
    return store


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def cmd_act(args: argparse.Namespace) -> int:
    from bus.console import actions

    store = _store(args)
    if len(args.ids) == 1:
        outcome = actions.act(store, args.action, args.ids[0], actor=_actor(),
                              reason=args.reason, via="cli")
        print(f"{outcome.delivery}: {outcome.before} -> {outcome.after}")
        return 0
    result = actions.act_many(store, args.action, args.ids, actor=_actor(),
                              reason=args.reason, via="cli", per_second=args.rate)
    for o in result.done:
        print(f"{o.delivery}: {o.before} -> {o.after}")
    for delivery, refusal in result.refused:
        print(f"{delivery}: {refusal.code}: {refusal.message}")
    if result.stopped:
        print(f"stopped by the stop switch; {len(result.untouched)} not touched: "
              + " ".join(result.untouched))
    return 1 if result.refused or result.stopped else 0


def cmd_bulk_stop(args: argparse.Namespace) -> int:
    from bus.console import actions

    store = _store(args)
    if args.state is not None:
        actions.set_stop_switch(store, args.state == "on", actor=_actor())
    on = actions.stop_switch(store)
    print("bulk actions: " + ("STOPPED (switch on)" if on else "allowed (switch off)"))
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise errors.InvalidRequest("the two passwords differ")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    from bus.console import users

    store = _store(args, create=args.users_command == "add")
    if args.users_command == "list":
        for user in users.list_users(store):
            print(f"{user.name:24s} {user.role:9s} {user.system or ''}")
        return 0
    if args.users_command == "add":
        user = users.add_user(store, args.name, _password(args), args.role,
                              system=args.system, actor=_actor())
        print(f"user {user.name} added ({user.role}"
              + (f", system {user.system})" if user.system else ")"))
    elif args.users_command == "passwd":
        users.set_password(store, args.name, _password(args), actor=_actor())
        print(f"password of {args.name} changed; their sessions ended")
    else:
        users.remove_user(store, args.name, actor=_actor())
        print(f"user {args.name} removed")
    return 0


def add_cli(sub: Any, common: Common, deliveries: Any) -> None:
    """Adds the action commands under ``deliveries`` and the ``users`` command."""
    from bus.console.actions import BULK_PER_SECOND

    for action, helptext in (
            ("resend", "send parked, refused or waiting deliveries again, from attempt 0"),
            ("requeue", "alias of resend"),
            ("park", "hold pending or queued deliveries until an operator resends them"),
            ("cancel", "never deliver these (terminal state cancelled)")):
        cmd = deliveries.add_parser(action, help=helptext)
        common(cmd)
        cmd.add_argument("ids", nargs="+", metavar="DELIVERY_ID")
        cmd.add_argument("--reason", required=True,
                         help="why (recorded in each document's history)")
        cmd.add_argument("--rate", type=float, default=BULK_PER_SECOND,
                         help=f"deliveries per second for several ids (default "
                              f"{BULK_PER_SECOND:g})")
        cmd.set_defaults(func=cmd_act, action="resend" if action == "requeue" else action)
    stop = deliveries.add_parser("bulk-stop", help="stop running bulk actions (on), allow "
                                 "them (off), or show the switch")
    common(stop)
    stop.add_argument("state", nargs="?", choices=("on", "off"))
    stop.set_defaults(func=cmd_bulk_stop)

    users = sub.add_parser("users", help="local users of the web console")
    usub = users.add_subparsers(dest="users_command", required=True)
    listing = usub.add_parser("list", help="names, roles and systems")
    common(listing)
    listing.set_defaults(func=cmd_users)
    for name, helptext in (("add", "add a user (asks for the password)"),
                           ("passwd", "set a new password; ends the user's sessions"),
                           ("remove", "remove a user; ends their sessions")):
        cmd = usub.add_parser(name, help=helptext)
        common(cmd)
        cmd.add_argument("name")
        if name != "remove":
            cmd.add_argument("--password-stdin", action="store_true",
                             help="read the password from the first line of stdin")
        if name == "add":
            cmd.add_argument("--role", required=True,
                             choices=("operator", "officer", "auditor"))
            cmd.add_argument("--system", help="officer: the connected system whose "
                             "documents they may see")
        cmd.set_defaults(func=cmd_users)
