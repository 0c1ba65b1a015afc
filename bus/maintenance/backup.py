"""``lgsp backup -o DIR`` and ``lgsp restore DIR``: the database and the configuration.

Payloads live in the database (table ``payloads``), so the database is the whole state.
SQLite is copied with its online backup API (a consistent snapshot while the bus runs);
PostgreSQL with ``pg_dump --format=custom`` (consistent too: one transaction snapshot),
restored by ``pg_restore`` into an empty database. Beside it: routes.yaml, the directory,
credentials.yaml, the facade's systems file and the settings file, and a manifest with
every file's SHA-256 and the counts a restore is checked against: every document's
payload is read back and its hash compared.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from bus import errors
from bus.settings import Settings
from bus.store import Store
from bus.store.schema import state
from bus.store.tables import create_engine, documents, payloads

MANIFEST = "manifest.json"
SQLITE_FILE = "lgsp.db"
PG_FILE = "lgsp.pgdump"


@dataclass(frozen=True)
class Checked:
    documents: int
    payloads: int
    bytes: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump/pg_restore take it (no driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(args: list[str], what: str) -> None:
    binary = shutil.which(args[0])
    if binary is None:
        raise errors.Unavailable(f"{args[0]} is not installed (Debian: apt-get install "
                                 "postgresql-client, the server's major version or newer)")
    done = subprocess.run([binary, *args[1:]], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise errors.Unavailable(f"{what} failed: {last}")


def verify(engine: Engine) -> Checked:
    """Reads every document's payload (and original) back and checks its SHA-256."""
    store = Store(engine)
    count = total = 0
    d = documents.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.id, d.payload_sha256, d.original_sha256)).all()
        stored = int(conn.execute(sa.select(sa.func.count()).select_from(payloads))
                     .scalar_one())
    for row in rows:
        for digest in filter(None, (row.payload_sha256, row.original_sha256)):
            data = store.payload(digest)
            if hashlib.sha256(data).hexdigest() != digest:
                raise errors.InvalidRequest(f"document {row.id}: payload {digest} does not "
                                            "match its hash")
            total += len(data)
        count += 1
    return Checked(documents=count, payloads=stored, bytes=total)


def _pg_dump(engine: Engine, url: str, target: Path) -> Checked:
    """pg_dump of an exported snapshot, counted in that same snapshot, so the manifest's
    counts are the dump's even while documents keep arriving."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, \
            conn.begin():
        snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
              f"--snapshot={snapshot}", f"--file={target}", _libpq(url)], "pg_dump")
        docs = int(conn.execute(sa.select(sa.func.count()).select_from(documents))
                   .scalar_one())
        stored = int(conn.execute(sa.select(sa.func.count()).select_from(payloads))
                     .scalar_one())
    return Checked(documents=docs, payloads=stored, bytes=0)


def _config_files(settings: Settings, config_file: str | None) -> dict[str, Path]:
    files = {"routes.yaml": settings.routes, "directory.yaml": settings.directory,
             "credentials.yaml": settings.credentials}
    systems = settings.vxp_systems or settings.directory.parent / "vxp_systems.yaml"
    files["vxp_systems.yaml"] = systems
    if config_file:
        files["settings.yaml"] = Path(config_file)
    return {name: path for name, path in files.items() if path.is_file()}


def backup(settings: Settings, out: Path, *, config_file: str | None = None) -> dict[str, Any]:
    if out.exists() and any(out.iterdir()):
        raise errors.InvalidRequest(f"{out} is not empty; give a new directory")
    url = settings.effective_database_url
    if url.startswith("sqlite") and not (settings.data_dir / "lgsp.db").is_file() \
            and not settings.database_url:
        raise errors.NotFound("no bus database (lgsp.db) in the data directory "
                              f"{settings.data_dir.resolve()}")
    engine = create_engine(url)
    try:
        found = state(engine)
        if found.empty:
            raise errors.NotFound(f"no bus database at {url.split('@')[-1]}")
        out.mkdir(parents=True, exist_ok=True)
        os.chmod(out, 0o700)  # credentials.yaml and every document are in here
        if engine.dialect.name == "sqlite":
            with sqlite3.connect(str(engine.url.database)) as source, \
                    sqlite3.connect(out / SQLITE_FILE) as copy:
                source.backup(copy)
            database = SQLITE_FILE
            copied = create_engine(f"sqlite:///{out / SQLITE_FILE}")
            try:
                checked = verify(copied)
            finally:
                copied.dispose()
        else:
            database = PG_FILE
            checked = _pg_dump(engine, url, out / PG_FILE)
    finally:
        engine.dispose()
    (out / "config").mkdir()
    files = {database: _sha256(out / database)}
    for name, path in _config_files(settings, config_file).items():
        shutil.copy2(path, out / "config" / name)
        files[f"config/{name}"] = _sha256(out / "config" / name)
    manifest = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "backend": engine.dialect.name, "database": database,
                "revision": found.current, "documents": checked.documents,
                "payloads": checked.payloads, "files": files}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _manifest(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise errors.InvalidRequest(f"{source} is not a backup made by lgsp backup "
                                    f"({MANIFEST}: {exc})") from None
    for name, digest in manifest["files"].items():
        path = source / name
        if not path.is_file() or _sha256(path) != digest:
            raise errors.InvalidRequest(f"{path} is missing or changed since the backup; "
                                        "refusing to restore it")
    return manifest


def restore(settings: Settings, source: Path, *, config_to: Path | None = None) -> Checked:
    """Into an empty database (or a data directory without one); then every document is
    read back and the counts compared with the manifest's."""
    manifest = _manifest(source)
    url = settings.effective_database_url
    if url.startswith("sqlite") != (manifest["database"] == SQLITE_FILE):
        raise errors.InvalidRequest(
            f"this backup is of a {manifest['backend']} database; configure the bus for "
            f"one (database_url) before restoring")
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        if not state(engine).empty:
            raise errors.InvalidRequest("the target database is not empty; restore into a "
                                        "new one (or move the data directory's lgsp.db away)")
        if engine.dialect.name == "sqlite":
            engine.dispose()
            target = Path(str(engine.url.database))
            target.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(source / SQLITE_FILE) as copy, \
                    sqlite3.connect(target) as restored:
                copy.backup(restored)
        else:
            _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                  f"--dbname={_libpq(url)}", str(source / PG_FILE)], "pg_restore")
        Store(engine).create_schema()  # an older backup: the embedded one is upgraded
        checked = verify(engine)
    finally:
        engine.dispose()
    if (checked.documents, checked.payloads) != (manifest["documents"], manifest["payloads"]):
        raise errors.InvalidRequest(
            f"restored {checked.documents} documents and {checked.payloads} payloads, the "
            f"backup holds {manifest['documents']} and {manifest['payloads']}")
    if config_to is not None:
        config_to.mkdir(parents=True, exist_ok=True)
        for name in manifest["files"]:
            if name.startswith("config/"):
                shutil.copy2(source / name, config_to / name.removeprefix("config/"))
    return checked
