"""All four system adapters end to end through RabbitMQ and PostgreSQL.

Documents travel among eOffice (SOAP), VNPT-iOffice (the /vxp facade), HCM Egov (REST
and its polled outbox) and an agency outside the province (the national axis); each
recipient answers 01, 03 and 06. Every simulator deduplicates by idempotency key and
records one effect per key, so counting what each one holds proves nothing was lost and
nothing arrived twice, and the bus's business statuses prove each answer reached its
document.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from adapters.demo import Province, drive
from tests.cluster import fresh_database
from tests.servers import PostgresServer, RabbitMQServer

ROUNDS = 5


def test_documents_among_the_four_systems_with_statuses_back(
        tmp_path: Path, rabbitmq: RabbitMQServer, postgres: PostgresServer) -> None:
    province = Province(tmp_path, database_url=fresh_database(postgres, "four_systems"),
                        broker_url=rabbitmq.url)
    with (tmp_path / "bus.log").open("a", encoding="utf-8") as log, province.started(log):
        time.sleep(2.0)
        journeys = [j for r in range(1, ROUNDS + 1) for j in province.journeys(r)]
        started = time.monotonic()
        complete = drive(province, journeys, 180.0, lambda _elapsed: None)
        elapsed = time.monotonic() - started
        unfinished = [(j.title, j.step, j.transport, j.business) for j in journeys
                      if not (j.done and province.final_step_done(j))]
        eoffice_keys = collections.Counter(r.key for r in province.eoffice.received)
        egov_keys = collections.Counter(r.key for r in province.egov.received())
        ioffice = dict(province.ioffice.acks)
        axis_sent = province.axis.sent()
    n = len(journeys)
    print(f"\n{n} documents and {3 * n} statuses among four systems through RabbitMQ in "
          f"{elapsed:.1f} s; eOffice effects {sum(eoffice_keys.values())}, HCM Egov "
          f"effects {sum(egov_keys.values())}, iOffice acks {sum(ioffice.values())}, "
          f"axis sends {len(axis_sent)}")
    assert complete, unfinished
    assert all(count == 1 for count in eoffice_keys.values()), "eOffice saw a key twice"
    assert all(count == 1 for count in egov_keys.values()), "HCM Egov saw a key twice"
    # eOffice gets one document per round (from HCM Egov) and the statuses answering its
    # two documents per round (from iOffice and from outside): 1 + 6 per round.
    assert sum(eoffice_keys.values()) == ROUNDS * 7
    # HCM Egov gets one document per round and the statuses of its own document.
    assert sum(egov_keys.values()) == ROUNDS * 4
    # iOffice collects one document and three statuses per round, each acknowledged once.
    assert len(ioffice) == ROUNDS * 4 and all(v == 1 for v in ioffice.values())
    assert len(axis_sent) == ROUNDS
