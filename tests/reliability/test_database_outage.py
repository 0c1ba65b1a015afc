"""PostgreSQL SIGKILLed and restarted under load, on the scaled-out bus.

Two ``lgsp serve --no-workers`` and two ``lgsp worker`` processes on a private PostgreSQL
(the session's server is shared by other tests, so it is never killed) and RabbitMQ.
While the database is down every ingress must answer at once with a coded 503
(``Unavailable``) — never a 500, never a hang — and /readyz must say "not ready"; the
client keeps the contract and sends again. After the restart everything accepted is
delivered exactly once as an effect, and no bus process died.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.cluster import (
    Progress,
    Sender,
    Submission,
    background,
    fresh_vhost,
    routes_document,
    soak,
)
from tests.http_sink import HttpSink
from tests.reliability.battery_kit import RULES, audit, make_documents, report, scaled_out, settle
from tests.servers import PostgresServer, RabbitMQServer

pytestmark = [pytest.mark.services, pytest.mark.slow]

DOCUMENTS: Final = soak(1_500)
KILLS: Final = 2
DOWN_S: Final = 8.0
ANSWER_BOUND_S: Final = 6.0
"""Every answer, 503 included, within this: connect_timeout is 5 s, a refused connect
on loopback is immediate."""


def _watch_readiness(urls: list[str], stop: threading.Event,
                     seen: collections.Counter[str]) -> None:
    with httpx.Client(timeout=ANSWER_BOUND_S, trust_env=False) as client:
        while not stop.is_set():
            for url in urls:
                try:
                    response = client.get(url + "/readyz")
                    body = response.json()
                    database = "ok" if body["checks"].get("database") == "ok" else "failed"
                    seen[f"{response.status_code} {body.get('status')} database={database}"] += 1
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    seen[type(exc).__name__] += 1
            stop.wait(0.5)


def test_postgres_kill9_twice_under_load(tmp_path: Path, rabbitmq: RabbitMQServer) -> None:
    documents = make_documents(DOCUMENTS, "pgk")
    submissions = [Submission(d) for d in documents]
    with PostgresServer() as pg, HttpSink() as sink, \
            scaled_out(tmp_path, pg, fresh_vhost(rabbitmq),
                       routes_document(sink, rules=RULES)) as cluster:
        progress = Progress()
        outages: list[float] = []
        readiness: collections.Counter[str] = collections.Counter()
        began = time.monotonic()
        with Sender(cluster.urls, timeout_s=ANSWER_BOUND_S * 2, max_pause_s=0.5) as sender:
            with background(lambda: sender.submit_all(
                    submissions, threads=4, deadline=began + soak(240), progress=progress),
                    "client"):
                for kill in range(1, KILLS + 1):
                    target = DOCUMENTS * kill // (KILLS + 1)
                    assert progress.wait_for(target, soak(120)), f"client stuck at {progress.value}"
                    pg.kill9()
                    down = time.monotonic()
                    stop = threading.Event()
                    watcher = threading.Thread(target=_watch_readiness,
                                               args=(cluster.urls(), stop, readiness))
                    watcher.start()
                    time.sleep(DOWN_S)
                    stop.set()
                    watcher.join(30)
                    pg.restart()
                    outages.append(time.monotonic() - down)
            submitted = time.monotonic() - began
            settle(cluster, sink, soak(180))
            took = time.monotonic() - began
            client = dict(sender.counts)
            slowest = {k: round(v, 2) for k, v in sender.slowest_s.items()}
            sample = sender.samples.get("http_503")
        result = audit(cluster, sink, submissions)
        dead = [p.name for p in cluster.processes if not p.alive()]
        report("postgres kill -9", result, seconds=took, kills=KILLS,
               outages_s=[round(o, 1) for o in outages], submitted_in_s=round(submitted, 1),
               client=client, slowest_answer_s=slowest, readyz_during_outage=dict(readiness),
               dead_processes=dead)
        print(f"  503 body: {sample}")
        assert result.problems == []
        assert result.lost == 0 and result.documents == DOCUMENTS
        assert client.get("http_503", 0) > 0, "the outage was never seen by a sender"
        # 200 is a retry answered "existing": a COMMIT whose answer the kill swallowed.
        assert set(client) <= {"http_200", "http_202", "http_503"}, client
        assert sample is not None and sample["code"] == "Unavailable"
        assert "database is unreachable" in sample["message"]
        assert max(sender.slowest_s.values()) < ANSWER_BOUND_S, slowest
        # Every probe while the database was down answered, in time, "not ready".
        assert set(readiness) == {"503 not ready database=failed"}, readiness
        assert dead == []
