"""The yardstick for bench_bus.py: the bus's steps written directly on the libraries.

    python tests/bench/bare_pipeline.py ingress --port P --pg DSN --amqp URL
    python tests/bench/bare_pipeline.py worker --pg DSN --amqp URL --sink URL [--threads N]
    python tests/bench/bare_pipeline.py ingress --port P --sqlite FILE --sink URL [--threads N]

The issue's target is relative ("the bus at least half as fast as a bare pipeline"), so
the bare pipeline must do what no implementation can skip and nothing more: check an API
key, parse with a hardened parser and validate against the bus's own XSD, commit the
document, its payload and one delivery row in one transaction, hand the delivery to the
queue, answer 202; then load, POST, mark delivered. Routing, the sender check,
deduplication, audit events, re-serialisation with a trace header, metrics and logging
are what the bus adds on top, and exactly what the comparison is meant to price.

Choices that keep the comparison like for like:

* PostgreSQL + RabbitMQ: a separate worker process consuming with pika, as ``lgsp
  worker`` is; the ingress publishes persistent messages to a durable quorum queue and
  waits for the broker's confirm before answering, so a 202 means "committed and queued".
* SQLite: the polling worker threads run inside the ingress process, because the embedded
  bus (``lgsp serve``) delivers from its own process too; a second process would give the
  bare side a core the bus does not have. The ingress wakes a worker after each commit
  (as the bus's dispatcher does) and the workers poll every 0.2 s regardless.
* The HTTP client is the standard library's ``http.client`` on one kept-alive connection
  per delivery thread, as the bus's ``http`` adapter posts (adapters/http/transport.py),
  and the worker sends the same ``X-LGSP-Document`` header, which is how the benchmark's
  sink matches a delivery to the POST that caused it.

Every process stops cleanly on SIGTERM or SIGINT, within a couple of seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import queue
import signal
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import pika
import psycopg
import yaml
from lxml import etree

from bus.schemas import default_schemas

REPO = Path(__file__).resolve().parents[2]
NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DOCUMENT_ID_PATH = f".//{{{NS}}}MessageHeader/{{{NS}}}DocumentId"
QUEUE = "bare.deliver"
MAX_BODY = 150 * 1024 * 1024
POLL_S = 0.2

T = TypeVar("T")

PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bare_documents (id text PRIMARY KEY, document_id text NOT NULL,"
    " size bigint NOT NULL, received_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bare_payloads (document text PRIMARY KEY"
    " REFERENCES bare_documents(id), data bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bare_deliveries (id text PRIMARY KEY, document text NOT NULL"
    " REFERENCES bare_documents(id), state text NOT NULL, created_at double precision NOT NULL,"
    " delivered_at double precision)",
)
SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bare_documents (id TEXT PRIMARY KEY, document_id TEXT NOT NULL,"
    " size INTEGER NOT NULL, received_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bare_payloads (document TEXT PRIMARY KEY"
    " REFERENCES bare_documents(id), data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bare_deliveries (id TEXT PRIMARY KEY, document TEXT NOT NULL"
    " REFERENCES bare_documents(id), state TEXT NOT NULL, created_at REAL NOT NULL,"
    " delivered_at REAL)",
    "CREATE INDEX IF NOT EXISTS bare_deliveries_due ON bare_deliveries (state, created_at)",
)


def key_digest(system: str = "eoffice") -> str:
    """The same credential file the bus reads, so both refuse and accept the same keys."""
    raw = yaml.safe_load((REPO / "config" / "credentials.yaml").read_text(encoding="utf-8"))
    entry = raw["systems"][system]
    return str(entry.get("key_sha256") or entry["development_key_sha256"])


class _Pool(Generic[T]):
    """Connections outlive the handler threads, which come and go with client sockets."""

    def __init__(self, make: Callable[[], T], close: Callable[[T], None]) -> None:
        self._make = make
        self._close = close
        self._idle: queue.SimpleQueue[T] = queue.SimpleQueue()

    @contextmanager
    def item(self) -> Iterator[T]:
        try:
            value = self._idle.get_nowait()
        except queue.Empty:
            value = self._make()
        try:
            yield value
        except BaseException:
            with suppress(Exception):  # a broken connection is dropped either way
                self._close(value)
            raise
        self._idle.put(value)

    def close_all(self) -> None:
        while True:
            try:
                value = self._idle.get_nowait()
            except queue.Empty:
                return
            with suppress(Exception):  # shutting down
                self._close(value)


class Backend(Protocol):
    def accept(self, document_id: str, data: bytes) -> str: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- PostgreSQL + RabbitMQ


class _Link:
    """One database connection and one confirming channel, used by one request at a time."""

    def __init__(self, dsn: str, amqp: str) -> None:
        self.db = psycopg.connect(dsn, autocommit=True)
        self.mq = pika.BlockingConnection(pika.URLParameters(amqp))
        self.channel = self.mq.channel()
        self.channel.confirm_delivery()
        declare(self.channel)

    def close(self) -> None:
        try:
            self.mq.close()
        finally:
            self.db.close()


def declare(channel: Any) -> None:
    channel.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})


class PgBackend:
    def __init__(self, dsn: str, amqp: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in PG_SCHEMA:
                conn.execute(statement)
        self._links: _Pool[_Link] = _Pool(lambda: _Link(dsn, amqp), _Link.close)

    def accept(self, document_id: str, data: bytes) -> str:
        doc, delivery, now = uuid.uuid4().hex, uuid.uuid4().hex, time.time()
        with self._links.item() as link:
            with link.db.transaction():
                link.db.execute("INSERT INTO bare_documents VALUES (%s, %s, %s, %s)",
                                (doc, document_id, len(data), now))
                link.db.execute("INSERT INTO bare_payloads VALUES (%s, %s)", (doc, data))
                link.db.execute("INSERT INTO bare_deliveries (id, document, state, created_at)"
                                " VALUES (%s, %s, 'queued', %s)", (delivery, doc, now))
            link.channel.basic_publish(
                "", QUEUE, delivery.encode(),
                pika.BasicProperties(delivery_mode=2, content_type="text/plain"),
                mandatory=True)
        return doc

    def close(self) -> None:
        self._links.close_all()


class PikaWorker:
    """``threads`` consumers, each with its own connections (pika is not thread-safe)."""

    def __init__(self, dsn: str, amqp: str, sink: str, threads: int) -> None:
        self.dsn, self.amqp, self.sink = dsn, amqp, sink
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, name=f"bare-consumer-{i}",
                                         daemon=True) for i in range(threads)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._consume()
            except Exception as exc:
                print(f"bare worker: {type(exc).__name__}: {exc}; reconnecting",
                      file=sys.stderr, flush=True)
                self.stop.wait(0.5)

    def _consume(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as db, \
                closing(Poster(self.sink)) as client:
            mq = pika.BlockingConnection(pika.URLParameters(self.amqp))
            try:
                channel = mq.channel()
                channel.basic_qos(prefetch_count=2)
                declare(channel)

                def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
                    if deliver(db, client, self.sink, body.decode()):
                        ch.basic_ack(method.delivery_tag)
                    else:
                        ch.basic_nack(method.delivery_tag, requeue=True)

                channel.basic_consume(QUEUE, on_message_callback=on_message)
                while not self.stop.is_set():
                    mq.process_data_events(time_limit=0.5)
            finally:
                if mq.is_open:
                    mq.close()


class Poster:
    """POSTs to one URL on one kept-alive connection, opened again when it fails."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "", parts.port or 80, parts.path
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        conn = self._conn or http.client.HTTPConnection(self.host, self.port, timeout=10.0)
        self._conn = None
        try:
            conn.request("POST", self.path or "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._conn = conn
        return response.status

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def deliver(db: psycopg.Connection[Any], client: Poster, sink: str,
            delivery: str) -> bool:
    row = db.execute(
        "SELECT d.document_id, p.data FROM bare_deliveries x"
        " JOIN bare_documents d ON d.id = x.document JOIN bare_payloads p ON p.document = d.id"
        " WHERE x.id = %s", (delivery,)).fetchone()
    if row is None:
        return True
    document_id, data = row
    status = client.post(bytes(data), headers={
        "Content-Type": "application/xml", "Idempotency-Key": delivery,
        "X-LGSP-Document": document_id})
    if status >= 300:
        return False
    db.execute("UPDATE bare_deliveries SET state = 'delivered', delivered_at = %s"
               " WHERE id = %s", (time.time(), delivery))
    return True


# ---------------------------------------------------------------- SQLite, polled


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE: take the write lock up front, as the bus does, never mid-way."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteBackend:
    def __init__(self, path: Path, sink: str, threads: int) -> None:
        self.path, self.sink = path, sink
        conn = _sqlite(path)
        try:
            for statement in SQLITE_SCHEMA:
                conn.execute(statement)
        finally:
            conn.close()
        self._conns: _Pool[sqlite3.Connection] = _Pool(lambda: _sqlite(path),
                                                       sqlite3.Connection.close)
        self._ready = threading.Semaphore(0)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._poll, name=f"bare-poller-{i}",
                                         daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def accept(self, document_id: str, data: bytes) -> str:
        doc, delivery, now = uuid.uuid4().hex, uuid.uuid4().hex, time.time()
        with self._conns.item() as conn, _immediate(conn):
            conn.execute("INSERT INTO bare_documents VALUES (?, ?, ?, ?)",
                         (doc, document_id, len(data), now))
            conn.execute("INSERT INTO bare_payloads VALUES (?, ?)", (doc, data))
            conn.execute("INSERT INTO bare_deliveries (id, document, state, created_at)"
                         " VALUES (?, ?, 'pending', ?)", (delivery, doc, now))
        self._ready.release()
        return doc

    def close(self) -> None:
        self.stop.set()
        for _ in self.threads:
            self._ready.release()
        deadline = time.monotonic() + 10
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._conns.close_all()

    def _poll(self) -> None:
        conn = _sqlite(self.path)
        try:
            with closing(Poster(self.sink)) as client:
                while not self.stop.is_set():
                    self._ready.acquire(timeout=POLL_S)
                    try:
                        while not self.stop.is_set() and self._one(conn, client):
                            pass
                    except Exception as exc:
                        print(f"bare poller: {type(exc).__name__}: {exc}", file=sys.stderr,
                              flush=True)
                        self.stop.wait(0.5)
        finally:
            conn.close()

    def _one(self, conn: sqlite3.Connection, client: Poster) -> bool:
        """Claims, delivers and records one due delivery; False when none was due."""
        with _immediate(conn):
            claimed = conn.execute(
                "UPDATE bare_deliveries SET state = 'delivering' WHERE id = (SELECT id FROM"
                " bare_deliveries WHERE state = 'pending' ORDER BY created_at LIMIT 1)"
                " RETURNING id, document").fetchone()
        if claimed is None:
            return False
        delivery, doc = claimed
        document_id, data = conn.execute(
            "SELECT d.document_id, p.data FROM bare_documents d JOIN bare_payloads p"
            " ON p.document = d.id WHERE d.id = ?", (doc,)).fetchone()
        status = client.post(data, headers={
            "Content-Type": "application/xml", "Idempotency-Key": delivery,
            "X-LGSP-Document": document_id})
        state = "delivered" if status < 300 else "pending"
        with _immediate(conn):
            conn.execute("UPDATE bare_deliveries SET state = ?, delivered_at = ? WHERE id = ?",
                         (state, time.time(), delivery))
        return True


# ---------------------------------------------------------------- the HTTP door


class _Ingress(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, backend: Backend) -> None:
        self.backend = backend
        self.digest = key_digest()
        self.schema = default_schemas().edoc
        self.local = threading.local()
        super().__init__(("127.0.0.1", port), _Handler)

    def parser(self) -> etree.XMLParser:
        """One parser per thread: lxml parsers keep state between documents."""
        parser: etree.XMLParser | None = getattr(self.local, "parser", None)
        if parser is None:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                     huge_tree=False, remove_comments=True, remove_pis=True)
            self.local.parser = parser
        return parser


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Ingress

    def setup(self) -> None:
        """TCP_NODELAY, as asyncio (hence uvicorn) sets it: headers and body leave in two
        writes, and on a keep-alive connection Nagle would hold the body back until the
        client's delayed ACK, 40 ms per request."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(200 if self.path == "/healthz" else 404, {"status": "ok"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/api/v1/edocs":
            self.rfile.read(length)
            self._reply(404, {"code": "NotFound"})
            return
        presented = hashlib.sha256((self.headers.get("X-API-Key") or "").encode()).hexdigest()
        if not hmac.compare_digest(presented, self.server.digest):
            self.rfile.read(length)
            self._reply(401, {"code": "Unauthenticated"})
            return
        if length > MAX_BODY:
            self.close_connection = True
            self._reply(413, {"code": "PayloadTooLarge"})
            return
        data = self.rfile.read(length)
        try:
            root = etree.fromstring(data, self.server.parser())
        except etree.XMLSyntaxError as exc:
            self._reply(400, {"code": "MalformedXml", "message": str(exc)})
            return
        if not self.server.schema.validate(etree.ElementTree(root)):
            self._reply(422, {"code": "SchemaInvalid"})
            return
        document_id = root.findtext(DOCUMENT_ID_PATH) or ""
        try:
            doc = self.server.backend.accept(document_id, data)
        except Exception as exc:
            self._reply(503, {"code": "Unavailable", "message": f"{type(exc).__name__}: {exc}"})
            return
        self._reply(202, {"id": doc, "document_id": document_id})

    def log_message(self, format: str, *args: object) -> None:
        return None


# ---------------------------------------------------------------- processes


def _until_signalled() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def run_ingress(args: argparse.Namespace) -> int:
    stop = _until_signalled()
    backend: Backend
    if args.sqlite:
        backend = SqliteBackend(Path(args.sqlite), args.sink, args.threads)
    else:
        backend = PgBackend(args.pg, args.amqp)
    server = _Ingress(args.port, backend)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="bare-ingress", daemon=True)
    thread.start()
    print(f"bare ingress listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        backend.close()
    return 0


def run_worker(args: argparse.Namespace) -> int:
    stop = _until_signalled()
    worker = PikaWorker(args.pg, args.amqp, args.sink, args.threads)
    worker.start()
    print(f"bare worker consuming {QUEUE} with {args.threads} thread(s)", flush=True)
    while not stop.wait(0.5):
        pass
    worker.join(10)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    ingress = sub.add_parser("ingress", help="the HTTP door (and, with --sqlite, delivery)")
    ingress.add_argument("--port", type=int, required=True)
    ingress.add_argument("--pg", help="libpq URL (with --amqp)")
    ingress.add_argument("--amqp", help="AMQP URL (with --pg)")
    ingress.add_argument("--sqlite", help="database file; delivers in-process")
    ingress.add_argument("--sink", help="delivery URL (with --sqlite)")
    ingress.add_argument("--threads", type=int, default=3, help="delivery threads (--sqlite)")
    ingress.set_defaults(func=run_ingress)
    worker = sub.add_parser("worker", help="pika consumer delivering to --sink")
    worker.add_argument("--pg", required=True)
    worker.add_argument("--amqp", required=True)
    worker.add_argument("--sink", required=True)
    worker.add_argument("--threads", type=int, default=4)
    worker.set_defaults(func=run_worker)
    args = parser.parse_args(argv)
    if args.role == "ingress" and not (args.sqlite and args.sink) \
            and not (args.pg and args.amqp):
        parser.error("ingress needs --pg and --amqp, or --sqlite and --sink")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
