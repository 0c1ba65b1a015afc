"""``lgsp migrate plan|run|resume|pause|verify|report|status``."""

from __future__ import annotations

import argparse
import contextlib
import csv
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bus import errors
from bus.app import Bus
from bus.clierrors import UNREACHABLE
from bus.migrate import jobs
from bus.migrate.lane import Lane, SourceUnavailable
from bus.migrate.report import write_reports
from bus.migrate.source import FolderSource, Source, open_source
from bus.migrate.verify import record_evidence, verify

__all__ = ["add_cli"]

ALIVE_S = 1.5
"""A runner writes its heartbeat every half second: one that has not moved in this long
is gone (killed, or its machine down), and ``resume`` takes the job over."""


def _alive(engine: Any, job: jobs.Job) -> bool:
    if job.heartbeat_at is None or time.time() - job.heartbeat_at > 30:
        return False
    time.sleep(ALIVE_S)
    return jobs.get_job(engine, job.id).heartbeat_at != job.heartbeat_at


def _bus(args: argparse.Namespace) -> Bus:
    from bus.clierrors import existing_engine
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    existing_engine(settings).dispose()  # the province's bus database, never a new one
    return Bus(settings)


def _source_from(args: argparse.Namespace) -> Source:
    if args.source_folder:
        return FolderSource(args.source_folder)
    if args.source_eoffice:
        return open_source({"kind": "eoffice", "url": args.source_eoffice,
                            "username": args.eoffice_user,
                            "password_env": args.eoffice_password_env})
    if args.source_generated:
        return open_source({"kind": "generated", "count": args.source_generated,
                            "owner": args.owner, "seed": 1, "sizes": [50 * 1024, 500 * 1024],
                            "big_every": 0, "big": [0, 0], "reject_every": 0,
                            "years": [2019, 2024]})
    raise errors.InvalidRequest("name the source: --source-folder DIR or --source-eoffice URL")


def _names(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return {row[0].strip(): row[1].strip() for row in csv.reader(handle)
                if len(row) >= 2 and row[0].strip() and not row[0].startswith("#")}


def _plan(bus: Bus, args: argparse.Namespace, out: Any) -> jobs.Job:
    cfg = bus.reloader.current()
    if args.target not in cfg.table.destinations:
        raise errors.InvalidRequest(f"target {args.target!r} is not a destination of "
                                    f"routes.yaml ({', '.join(sorted(cfg.table.destinations))})")
    if args.owner not in cfg.directory.agencies:
        raise errors.InvalidRequest(f"owner {args.owner} is not an agency of the directory "
                                    "(config/directory.yaml)")
    source = _source_from(args)
    job = jobs.create_job(bus.store.engine, source, target=args.target, owner=args.owner,
                          options={"place": args.place, "names": _names(args.names),
                                   "rate": args.rate, "window": args.window})
    print(f"job {job.id}: listing {source.label}", file=out, flush=True)
    job = jobs.plan(bus.store.engine, job, source,
                    progress=lambda n: print(f"  {n} records listed", file=out, flush=True))
    _show(job, out)
    return job


def _show(job: jobs.Job, out: Any) -> None:
    manifest = job.manifest or {}
    print(f"job {job.id}  {job.state}  {job.source.get('label')} → {job.target} "
          f"(owner {job.owner})  records {manifest.get('records', '?')}, files "
          f"{manifest.get('files', '?')}, manifest sha256 {job.manifest_sha256 or '—'}",
          file=out, flush=True)


def _run(bus: Bus, job: jobs.Job, args: argparse.Namespace) -> int:
    if args.nice:
        os.nice(args.nice)  # the lane's CPU gives way to the bus's processes too
    source = open_source(job.source)
    try:
        if job.state == "planning":
            job = jobs.plan(bus.store.engine, job, source)
        options = job.options
        rate = args.rate if args.rate is not None else float(options.get("rate") or 0)
        window = args.window if args.window is not None else int(options.get("window") or 8)
        with _maybe_deliver(bus, args.deliver):
            state = Lane(bus, job, source, rate=rate, window=window, out=sys.stderr).run()
    finally:
        source.close()
    print(f"job {job.id}: {state}")
    return 0


@contextlib.contextmanager
def _maybe_deliver(bus: Bus, deliver: bool) -> Iterator[None]:
    if not deliver:
        yield
        return
    from bus.runtime import running

    with running(bus, deliver=True):
        yield


def _command(body: Callable[[Bus, argparse.Namespace], int]
             ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from bus import logging as bus_logging

        bus_logging.configure(json=False, level="ERROR")
        bus = _bus(args)  # a mistake in the options is main()'s one line (bus.clierrors)
        try:
            return body(bus, args)
        except SourceUnavailable as exc:
            print(f"lgsp: the source is unreachable ({exc}); nothing is lost: "
                  f"`lgsp migrate resume JOB` continues where this stopped", file=sys.stderr)
            return UNREACHABLE
        except (OSError, ValueError) as exc:
            print(f"lgsp: cannot continue: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopped; `lgsp migrate resume JOB` continues", file=sys.stderr)
            return 130
        finally:
            bus.close()
    return run


def cmd_plan(bus: Bus, args: argparse.Namespace) -> int:
    _plan(bus, args, sys.stdout)
    return 0


def cmd_run(bus: Bus, args: argparse.Namespace) -> int:
    job = jobs.get_job(bus.store.engine, args.job) if args.job else _plan(bus, args, sys.stderr)
    if job.state in ("running", "paused"):
        raise errors.InvalidRequest(f"job {job.id} was already started; use `lgsp migrate "
                                    "resume` to continue it")
    return _run(bus, job, args)


def cmd_resume(bus: Bus, args: argparse.Namespace) -> int:
    engine = bus.store.engine
    job = jobs.get_job(engine, args.job)
    alive = job.state in ("running", "paused") and _alive(engine, job)
    if job.state == "finished":
        print(f"job {job.id} is finished; `lgsp migrate verify {job.id}`")
        return 0
    if job.state == "paused":
        jobs.set_state(engine, job.id, "running", only_from=("paused",))
        if alive:
            print(f"job {job.id}: resumed (its running process continues)")
            return 0
        job = jobs.get_job(engine, job.id)
    elif job.state == "running" and alive:
        raise errors.InvalidRequest(f"job {job.id} is running in another process")
    return _run(bus, job, args)


def cmd_pause(bus: Bus, args: argparse.Namespace) -> int:
    if not jobs.set_state(bus.store.engine, args.job, "paused", only_from=("running",)):
        job = jobs.get_job(bus.store.engine, args.job)
        raise errors.InvalidRequest(f"job {job.id} is {job.state}, not running")
    print(f"job {args.job}: paused; `lgsp migrate resume {args.job}` continues")
    return 0


def cmd_verify(bus: Bus, args: argparse.Namespace) -> int:
    result = verify(bus.store, args.job)
    print(json.dumps({"job": args.job, "verified": result.ok,
                      "manifest_intact": result.manifest_ok, "counts": result.counts},
                     ensure_ascii=False))
    for problem in result.problems[:50]:
        print(f"  {problem.record_id}: {problem.outcome}: {problem.reason}")
    return 0 if result.ok else 1


def cmd_report(bus: Bus, args: argparse.Namespace) -> int:
    result = verify(bus.store, args.job)
    written = write_reports(result, Path(args.out))
    record_evidence(bus.store, result, written, actor=f"operator:{getpass.getuser()}")
    for path, digest in written.items():
        print(f"{path}  sha256 {digest}")
    return 0 if result.ok else 1


def cmd_status(bus: Bus, args: argparse.Namespace) -> int:
    engine = bus.store.engine
    chosen = [jobs.get_job(engine, args.job)] if args.job else jobs.list_jobs(engine)
    for job in chosen:
        _show(job, sys.stdout)
        counts = jobs.counts_by_state(engine, job.id)
        print("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    migrate = sub.add_parser("migrate", help="move an agency's legacy archive to its new "
                             "system, with a manifest, verification and a report")
    msub = migrate.add_subparsers(dest="migrate_command", required=True)

    def source_args(cmd: argparse.ArgumentParser, required: bool) -> None:
        cmd.add_argument("--source-folder", help="a folder export (register.jsonl or "
                         "register.csv, and the files)")
        cmd.add_argument("--source-eoffice", metavar="URL",
                         help="an eOffice archive service (its SOAP endpoint)")
        cmd.add_argument("--source-generated", type=int, metavar="N", help=argparse.SUPPRESS)
        cmd.add_argument("--eoffice-user")
        cmd.add_argument("--eoffice-password-env", default="LGSP_EOFFICE_PASSWORD")
        cmd.add_argument("--target", required=required,
                         help="destination of routes.yaml (e.g. vnpt_ioffice, hcm_egov)")
        cmd.add_argument("--owner", required=required,
                         help="identifier of the agency whose archive this is")
        cmd.add_argument("--place", default="", help="PromulgationInfo/Place to write")
        cmd.add_argument("--names", help="CSV of 'name as written,identifier' for agencies "
                         "the old system names differently from the directory")

    def lane_args(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--rate", type=float, help="records per second (default unlimited)")
        cmd.add_argument("--window", type=int, help="at most this many deliveries waiting "
                         "on the target before the next record (default 8)")
        cmd.add_argument("--nice", type=int, default=10,
                         help="lower this process's CPU priority by N (default 10; 0 keeps "
                              "it) so live traffic keeps the processors")
        cmd.add_argument("--deliver", action="store_true",
                         help="deliver from this process too (when no `lgsp serve` runs)")

    plan = msub.add_parser("plan", help="create a job and take the source's manifest")
    common(plan)
    source_args(plan, True)
    plan.add_argument("--rate", type=float, default=0.0)
    plan.add_argument("--window", type=int, default=8)
    plan.set_defaults(func=_command(cmd_plan))
    run = msub.add_parser("run", help="run a planned job (or plan one from the source "
                          "options and run it)")
    common(run)
    run.add_argument("job", nargs="?")
    source_args(run, False)
    lane_args(run)
    run.set_defaults(func=_command(cmd_run))
    resume = msub.add_parser("resume", help="continue a paused or interrupted job")
    common(resume)
    resume.add_argument("job")
    lane_args(resume)
    resume.set_defaults(func=_command(cmd_resume))
    for name, func, helptext in (
            ("pause", cmd_pause, "pause a running job (its process waits)"),
            ("verify", cmd_verify, "compare manifest, packets sent and acknowledgements; "
                                   "exit 0 only when every record is accounted for")):
        cmd = msub.add_parser(name, help=helptext)
        common(cmd)
        cmd.add_argument("job")
        cmd.set_defaults(func=_command(func))
    report = msub.add_parser("report", help="verify, then write the HTML (Vietnamese) and "
                             "CSV reports and record them in the audit trail")
    common(report)
    report.add_argument("job")
    report.add_argument("--out", default=".", help="folder for the reports")
    report.set_defaults(func=_command(cmd_report))
    status = msub.add_parser("status", help="jobs and their records' states")
    common(status)
    status.add_argument("job", nargs="?")
    status.set_defaults(func=_command(cmd_status))
