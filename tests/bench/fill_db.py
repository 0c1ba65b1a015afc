"""Fills a bus database with years of history, as a province's looks after five years.

    python tests/bench/fill_db.py sqlite PATH [--documents N]
    python tests/bench/fill_db.py postgresql URL [--documents N]

The default is 1,000,000 documents with about 3 deliveries and 10 events each (3 million
and 10 million rows), spread over five years: 300 agencies of which a few send most of
the mail, subjects composed from the phrases of Vietnamese official letters, most
deliveries long delivered, a tail refused or parked, ten agencies merged into others a
year ago (their deliveries since reach the successor), the last days' still pending or
awaiting pickup, business statuses answering a fifth of the documents, deadlines on the
documents accepted since the deadline feature (the last year). The rows are what
:class:`bus.store.Store` writes (same columns, same event vocabulary), generated from a
seed so two runs give the same database.

Speed matters because a benchmark that takes an hour to prepare is never rerun: tables
are created without their secondary indexes, filled (PostgreSQL by ``COPY``, SQLite by
``executemany`` in transactions of 50,000 documents with synchronous off), and the
indexes built at the end, which is how any bulk load is done; then PostgreSQL's
``VACUUM ANALYZE`` (autovacuum's work; SQLite gets none, as the embedded bus runs none). The
database is then exactly the schema the bus creates (its indexes included). Prints how
long each step took. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: tests/ is not an installed package
    sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from bus.store import Store, text_index  # noqa: E402
from bus.store.tables import create_engine, metadata  # noqa: E402

YEAR = 365 * 86400.0
SPAN = 5 * YEAR
CHUNK = 50_000

_ACTIONS = ("Về việc", "V/v", "Công văn", "Thông báo", "Kế hoạch", "Báo cáo", "Quyết định",
            "Tờ trình", "Giấy mời", "Hướng dẫn")
_VERBS = ("triển khai", "tăng cường", "đôn đốc", "tổ chức", "phê duyệt", "góp ý dự thảo",
          "kiểm tra", "rà soát", "thực hiện", "tổng kết", "báo cáo kết quả", "phân bổ")
_TOPICS = ("công tác phòng chống thiên tai", "chuyển đổi số", "cải cách hành chính",
           "phòng cháy chữa cháy", "an toàn giao thông", "quản lý đất đai",
           "giải ngân vốn đầu tư công", "xây dựng nông thôn mới", "tiêm chủng mở rộng",
           "bảo vệ môi trường", "thu ngân sách nhà nước", "dịch vụ công trực tuyến",
           "phòng chống dịch bệnh", "giáo dục và đào tạo", "bảo hiểm xã hội",
           "quy hoạch sử dụng đất", "chứng thực điện tử", "an ninh mạng",
           "hội nghị trực tuyến", "thi đua khen thưởng", "đền bù giải phóng mặt bằng",
           "kiểm soát thủ tục hành chính", "văn hóa công sở", "hồ sơ địa chính")
_PLACES = ("tỉnh", "huyện Điện Biên", "thành phố Huế", "thị xã Sơn Tây", "xã Tân Lập",
           "huyện Mộc Châu", "phường Bến Nghé", "các sở, ban, ngành", "UBND cấp huyện",
           "huyện Phú Quốc", "thành phố Đà Lạt", "huyện Quỳnh Lưu")
_NOTATIONS = ("UBND-VX", "QĐ-UBND", "SNV-CCHC", "STTTT-CNTT", "SYT-NVY", "SGDĐT-VP",
              "STC-NS", "BC-UBND", "TB-VPUB", "KH-UBND", "GM-SNN", "HD-STNMT")
DESTINATIONS = ("ioffice", "edoc-viettel", "qlvb-fpt", "axis", "archive", "mailbox-huyen",
                "qlvb-sonv", "qlvb-syt", "eoffice-cmc", "mailbox-xa", "dvc-portal",
                "qlvb-stc")


def agencies(count: int = 300) -> list[str]:
    return [f"000.{i // 100:02d}.{(i // 10) % 10:02d}.H{i % 64:02d}" for i in range(count)]


@dataclass
class Plan:
    documents: int
    seed: int = 2026
    now: float = 0.0

    def __post_init__(self) -> None:
        self.now = self.now or time.time()


class Generator:
    """Rows for one chunk of documents at a time, oldest first, as the bus wrote them."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.agencies = agencies()
        # Ten agencies merged into ten others a year ago (provinces reorganise): their
        # deliveries since reach the successor (successor resolution, effective_recipient).
        # Decided without the random generator, so every other row is as before.
        self.successors = dict(zip(self.agencies[290:300], self.agencies[280:290], strict=True))
        weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(self.agencies))]
        self.weights = list(_cumulative(weights))
        self.payloads = [f"{self.rng.getrandbits(256):064x}" for _ in range(1000)]
        self.start = plan.now - SPAN
        self.step = SPAN / max(plan.documents, 1)
        self.edocs: list[str] = []
        self.event_id = 0
        self.status_id = 0

    def sender(self) -> str:
        return self.rng.choices(self.agencies, cum_weights=self.weights)[0]

    def subject(self) -> str:
        r = self.rng
        return (f"{r.choice(_ACTIONS)} {r.choice(_VERBS)} {r.choice(_TOPICS)} "
                f"trên địa bàn {r.choice(_PLACES)} năm {2021 + r.randrange(6)}")

    def chunk(self, first: int, count: int) -> dict[str, list[tuple[Any, ...]]]:
        r = self.rng
        out: dict[str, list[tuple[Any, ...]]] = {
            "documents": [], "deliveries": [], "events": [], "business_statuses": [],
            "delivery_deadlines": []}
        for n in range(first, first + count):
            self._document(n, r, out)
        return out

    def _document(self, n: int, r: random.Random,
                  out: dict[str, list[tuple[Any, ...]]]) -> None:
        at = self.start + n * self.step + r.random() * self.step
        age = self.plan.now - at
        doc = f"{r.getrandbits(128):032x}"
        sender = self.sender()
        system = f"qlvb-{sender[-3:].lower()}"
        is_status = bool(self.edocs) and r.random() < 0.2
        refers_to = r.choice(self.edocs[-5000:]) if is_status else None
        document_id = f"{r.getrandbits(128):032x}"
        if is_status:
            kind, code, subject, business, status_code = "status", None, None, None, \
                r.choice(("01", "02", "03", "04", "05", "06", "13", "15"))
            dedup = f"status|{sender}|{refers_to}|{n}"
        else:
            kind, business, status_code = "edoc", r.choice(("0", "0", "0", "1", "2")), None
            code = f"{r.randrange(1, 9999)}/{r.choice(_NOTATIONS)}"
            subject = self.subject()
            dedup = f"edoc|{sender}|{document_id}"
            self.edocs.append(doc)
            if len(self.edocs) > 20000:
                del self.edocs[:10000]
        count = 1 if is_status else r.choice((2, 3, 3, 3, 4, 4, 4, 5))
        recipients = r.sample(self.agencies, count)
        rows = []
        for i, recipient in enumerate(recipients):
            delivery = f"{r.getrandbits(128):032x}"
            state = _state(r, age)
            destination = DESTINATIONS[int(recipient[-2:]) % len(DESTINATIONS)]
            delivered = at + r.uniform(0.5, 30) if state == "delivered" else None
            attempts = 0 if state in ("pending", "queued") else 1 + (r.random() < 0.1)
            effective = self.successors.get(recipient, recipient) if age < YEAR else recipient
            rows.append((delivery, recipient, destination, state))
            out["deliveries"].append((
                delivery, doc, recipient, effective, destination, "default",
                False, state, attempts, at, None,
                "refused by destination: 400" if state in ("refused", "parked") else None,
                f"ref-{n}-{i}" if state in ("delivered", "awaiting") else None,
                at, delivered or at + 1, delivered))
            if kind == "edoc" and age < YEAR and state != "refused":
                settled = at + 3 * 86400 if age > 30 * 86400 and r.random() < 0.95 else None
                out["delivery_deadlines"].append((
                    delivery, doc, "default", at, at + 86400, at + 3 * 86400,
                    at + 15 * 86400, None, at, settled))
        receipt = json.dumps({"id": doc, "document_id": document_id, "kind": kind,
                              "recipients": [{"recipient": x[1], "delivery": x[0]}
                                             for x in rows]}, ensure_ascii=False)
        out["documents"].append((
            doc, kind, sender, document_id, dedup, f"{r.getrandbits(256):064x}",
            r.choice(self.payloads), None, r.randrange(4_000, 400_000), system, subject, code,
            business, status_code, refers_to, at, receipt))
        events = out["events"]
        detail = json.dumps({"sender": sender, "document_id": document_id,
                             "recipients": [x[1] for x in rows]}, ensure_ascii=False)
        events.append(self._event(at, doc, None, system, "accepted", detail))
        for delivery, recipient, destination, state in rows:
            effective = self.successors.get(recipient, recipient) if age < YEAR else recipient
            events.append(self._event(at, doc, delivery, "router", "routed", json.dumps(
                {"recipient": recipient, "effective": effective, "destination": destination,
                 "rule": "default"})))
            if state in ("pending", "queued"):
                continue
            events.append(self._event(at + 0.2, doc, delivery, "worker-1", "attempt",
                                      '{"attempt": 1}'))
            if state != "delivering":
                events.append(self._event(at + 0.5, doc, delivery, "worker-1", state,
                                          '{"attempt": 1}'))
            if state == "delivered" and r.random() < 0.3:
                events.append(self._event(at + 600, doc, delivery, recipient, "business",
                                          '{"code": "03"}'))
        if is_status and refers_to is not None:
            self.status_id += 1
            out["business_statuses"].append((
                self.status_id, refers_to, sender, status_code, None, at, doc))

    def _event(self, at: float, doc: str, delivery: str | None, actor: str, action: str,
               detail: str | None) -> tuple[Any, ...]:
        self.event_id += 1
        return (self.event_id, at, doc, delivery, actor, action, None, detail)


def _cumulative(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _state(r: random.Random, age: float) -> str:
    if age < 3 * 86400:
        return r.choices(("delivered", "pending", "queued", "awaiting", "delivering", "parked"),
                         (60, 15, 5, 15, 1, 4))[0]
    return r.choices(("delivered", "refused", "parked", "awaiting"), (9900, 60, 30, 10))[0]


COLUMNS = {
    "documents": ("id", "kind", "sender", "document_id", "dedup_key", "sha256",
                  "payload_sha256", "original_sha256", "size", "system", "subject", "code",
                  "business", "status_code", "refers_to", "received_at", "receipt"),
    "deliveries": ("id", "document", "recipient", "effective_recipient", "destination",
                   "rule", "is_copy", "state", "attempts", "next_attempt_at", "lease_until",
                   "last_error", "receipt_reference", "created_at", "updated_at",
                   "delivered_at"),
    "events": ("id", "at", "document", "delivery", "actor", "action", "digest", "detail"),
    "business_statuses": ("id", "document", "organ_id", "code", "reported_at", "received_at",
                          "status_document"),
    "delivery_deadlines": ("delivery", "document", "rule", "started_at", "arrival_due",
                           "acceptance_due", "completion_due", "due_date", "computed_at",
                           "settled_at"),
}


def _payload_rows(gen: Generator) -> list[tuple[Any, ...]]:
    blob = ("<edXML>" + "x" * 2000 + "</edXML>").encode()
    return [(digest, blob) for digest in gen.payloads]


def _secondary_indexes() -> list[sa.Index]:
    return [index for table in metadata.sorted_tables for index in table.indexes]


def fill(url: str, documents: int, *, seed: int = 2026, now: float = 0.0,
         log: Callable[[str], None] = print) -> dict[str, float]:
    """Fills the (empty) database at ``url``; returns seconds per step."""
    plan = Plan(documents, seed, now)
    gen = Generator(plan)
    engine = create_engine(url)
    timings: dict[str, float] = {}
    began = time.monotonic()
    Store(engine).create_schema()
    indexes = _secondary_indexes()
    with engine.begin() as conn:
        for index in indexes:
            index.drop(conn, checkfirst=True)
        text_index.drop(conn)  # built once over the rows, not a trigger per row
    postgres = engine.dialect.name == "postgresql"
    writer = _PgWriter(engine) if postgres else _SqliteWriter(url)
    try:
        writer.write("payloads", ("sha256", "data"), _payload_rows(gen))
        done = 0
        while done < documents:
            count = min(CHUNK, documents - done)
            rows = gen.chunk(done, count)
            for table, columns in COLUMNS.items():
                writer.write(table, columns, rows[table])
            writer.commit()
            done += count
            log(f"  {done:,} documents ({time.monotonic() - began:.0f} s)")
    finally:
        writer.close()
    timings["rows"] = time.monotonic() - began
    step = time.monotonic()
    with engine.begin() as conn:
        for index in indexes:
            index.create(conn, checkfirst=True)
        text_index.create(conn)
        if postgres:
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('events', 'id'), "
                                 "(SELECT max(id) FROM events))"))
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('business_statuses',"
                                 " 'id'), (SELECT coalesce(max(id), 1) FROM business_statuses))"))
    timings["indexes"] = time.monotonic() - step
    step = time.monotonic()
    if postgres:
        # What autovacuum does to a database that grew over years.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    # SQLite: no ANALYZE. The embedded bus never runs it, so its planner works without
    # statistics, and the benchmark measures the plans it really gets.
    timings["analyze"] = time.monotonic() - step
    timings["total"] = time.monotonic() - began
    engine.dispose()
    return timings


class _SqliteWriter:
    def __init__(self, url: str) -> None:
        self.conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-500000")
        self.conn.execute("BEGIN")

    def write(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(columns))
        # Table and column names are this module's constants, never input.
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        self.conn.executemany(statement, rows)

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("BEGIN")

    def close(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


class _PgWriter:
    def __init__(self, engine: sa.Engine) -> None:
        self.raw = engine.raw_connection()
        self.conn: Any = self.raw.driver_connection
        self.conn.execute("SET synchronous_commit = off")

    def write(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if table == "payloads":
            with self.conn.cursor() as cur, \
                    cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(_text(v) for v in row))
            buffer.write("\n")
        with self.conn.cursor() as cur, \
                cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.commit()
        self.raw.close()


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("backend", choices=("sqlite", "postgresql"))
    parser.add_argument("target", help="SQLite file path, or PostgreSQL SQLAlchemy URL "
                                       "(postgresql+psycopg://user@host:port/db)")
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.backend == "sqlite":
        path = Path(args.target)
        if path.exists():
            parser.error(f"{path} exists; fill_db writes a new database only")
        url = f"sqlite:///{path}"
    else:
        url = args.target
    timings = fill(url, args.documents, seed=args.seed)
    print(" ".join(f"{k}={v:.1f}s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
