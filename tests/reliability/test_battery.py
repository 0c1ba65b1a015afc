"""The delivery contract (shared/docs/contract.md) under crashes, outages and bad packets.

The bus runs as real processes (tests/cluster/): two ``lgsp serve --no-workers`` ingress
processes and two ``lgsp worker`` processes on RabbitMQ + PostgreSQL, or one embedded
``lgsp serve`` on SQLite. A loopback destination (tests/http_sink.py) counts *effects* by
Idempotency-Key, the way a destination that honours the key would. The client is an
agency system that keeps its half of the contract: without a 2xx it sends the same bytes
again.

Every scenario ends with the same audit, read from the database and the sink rather than
from anything the bus says about itself, and prints its figures before asserting:

* lost = accepted documents missing from the database + deliveries that did not end
  ``delivered`` with an effect at the destination (deliberately poisoned ones excepted);
* delivered twice = a destination with two effects for one (DocumentId, recipient);
* duplicate requests = the bus repeating itself to the destination (allowed: at-least-once
  transport), which the idempotency key must turn into no second effect.

Sizes are the issue's; the whole battery is sized for the 2-core CI machine (about
120 documents/s end to end there). Every wait has a deadline.
"""

from __future__ import annotations

import collections
import random
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import sqlalchemy as sa

from bus.routing import RetryPolicy
from tests.cluster import (
    Cluster,
    Progress,
    Sender,
    Submission,
    background,
    delivery_rows,
    fresh_vhost,
    routes_document,
)
from tests.http_sink import HttpSink
from tests.reliability.battery_kit import RULES, audit, make_documents, report, scaled_out, settle
from tests.servers import PostgresServer, RabbitMQServer

pytestmark = [pytest.mark.services, pytest.mark.slow]

CLIENT_THREADS: Final = 4
BROKER_KILL_DOCUMENTS: Final = 10_000
BROKER_KILLS: Final = 3
BROKER_OUTAGE_S: Final = 3.0
WORKER_KILL_DOCUMENTS: Final = 20_000
WORKER_KILLS: Final = 6
OUTAGE_DOCUMENTS: Final = (1_000, 200, 200)
DOWN_S, FAILING_S, SLOW_S, SLOW_EACH_S = 60.0, 10.0, 12.0, 2.0
POISON_GOOD_DOCUMENTS: Final = 1_000
POISON_ATTEMPTS: Final = 5
INGRESS_KILLS: Final = 200
DUPLICATED_DOCUMENTS: Final = 300

# --------------------------------------------------------------------------------------
# 1. broker kill -9
# --------------------------------------------------------------------------------------


def test_broker_kill9_three_times_during_10000_documents(
        tmp_path: Path, postgres: PostgresServer) -> None:
    """A private broker, not the session's: a quorum queue that fails to recover would
    otherwise take every later test down with it."""
    documents = make_documents(BROKER_KILL_DOCUMENTS, "brk")
    submissions = [Submission(d) for d in documents]
    with RabbitMQServer() as mq, HttpSink() as sink, \
            scaled_out(tmp_path, postgres, fresh_vhost(mq),
                       routes_document(sink, rules=RULES)) as cluster:
        # Workers declared their queues when they became ready; a kill less than ~0.5 s
        # after a declaration can leave RabbitMQ 3.10 with a quorum queue that never
        # elects a leader (tests/servers/rabbitmq.py, RabbitMQServer.kill9).
        time.sleep(2.0)
        progress = Progress()
        outages: list[float] = []
        began = time.monotonic()
        with Sender(cluster.urls) as sender:
            with background(lambda: sender.submit_all(
                    submissions, threads=CLIENT_THREADS, deadline=began + 420,
                    progress=progress), "client"):
                for kill in range(1, BROKER_KILLS + 1):
                    target = BROKER_KILL_DOCUMENTS * kill // (BROKER_KILLS + 1)
                    assert progress.wait_for(target, 300), f"client stuck at {progress.value}"
                    mq.kill9()
                    down = time.monotonic()
                    time.sleep(BROKER_OUTAGE_S)
                    mq.restart()
                    outages.append(time.monotonic() - down)
                    time.sleep(2.0)
            submitted = time.monotonic() - began
            settle(cluster, sink, 300)
            took = time.monotonic() - began
            client = dict(sender.counts)
        result = audit(cluster, sink, submissions)
        report("broker kill -9", result, seconds=took, kills=BROKER_KILLS,
               outages_s=[round(o, 1) for o in outages], submitted_in_s=round(submitted, 1),
               client=client)
        assert result.problems == []
        assert result.lost == 0 and result.documents == BROKER_KILL_DOCUMENTS


# --------------------------------------------------------------------------------------
# 2. delivery worker kill -9
# --------------------------------------------------------------------------------------


def test_worker_kill9_six_times_during_20000_documents(
        tmp_path: Path, postgres: PostgresServer, rabbitmq: RabbitMQServer) -> None:
    documents = make_documents(WORKER_KILL_DOCUMENTS, "wrk")
    submissions = [Submission(d) for d in documents]
    with HttpSink() as sink, \
            scaled_out(tmp_path, postgres, fresh_vhost(rabbitmq),
                       routes_document(sink, rules=RULES)) as cluster:
        workers = cluster.by_role("worker")
        progress = Progress()
        began = time.monotonic()
        with Sender(cluster.urls) as sender:
            with background(lambda: sender.submit_all(
                    submissions, threads=CLIENT_THREADS, deadline=began + 600,
                    progress=progress), "client"):
                for kill in range(1, WORKER_KILLS + 1):
                    target = WORKER_KILL_DOCUMENTS * kill // (WORKER_KILLS + 1)
                    assert progress.wait_for(target, 300), f"client stuck at {progress.value}"
                    victim = workers[kill % len(workers)]
                    victim.kill9()
                    victim.restart(60)
            submitted = time.monotonic() - began
            settle(cluster, sink, 300)
            took = time.monotonic() - began
        result = audit(cluster, sink, submissions)
        report("worker kill -9", result, seconds=took,
               kills=sum(w.kills for w in workers), submitted_in_s=round(submitted, 1))
        assert result.problems == []
        assert result.lost == 0 and result.documents == WORKER_KILL_DOCUMENTS


# --------------------------------------------------------------------------------------
# 3. destination down, failing, slow, then fine
# --------------------------------------------------------------------------------------


def test_destination_down_then_failing_then_slow_then_ok(
        tmp_path: Path, postgres: PostgresServer, rabbitmq: RabbitMQServer) -> None:
    """The retry policy must outlast ~85 s of trouble: full-jitter back-off capped at 10 s
    averages 5 s, so some 20–25 attempts; 60 leaves no realistic chance of parking."""
    retry = RetryPolicy(attempts=60, first_delay_s=0.5, max_delay_s=10.0)
    batches = [make_documents(n, f"out{i}") for i, n in enumerate(OUTAGE_DOCUMENTS)]
    submissions = [[Submission(d) for d in batch] for batch in batches]
    with HttpSink() as sink, \
            scaled_out(tmp_path, postgres, fresh_vhost(rabbitmq),
                       routes_document(sink, retry=retry, rules=RULES)) as cluster:
        began = time.monotonic()
        phases: dict[str, float] = {}
        wall: dict[str, float] = {}
        with Sender(cluster.urls) as sender:
            sink.down()
            sender.submit_all(submissions[0], threads=CLIENT_THREADS, deadline=began + 120)
            phases["down"] = time.monotonic()
            time.sleep(max(0.0, began + DOWN_S - time.monotonic()))
            sink.fail(503)
            sink.start()
            phases["5xx"] = time.monotonic()
            sender.submit_all(submissions[1], threads=CLIENT_THREADS, deadline=began + 180)
            time.sleep(max(0.0, phases["5xx"] + FAILING_S - time.monotonic()))
            sink.slow(SLOW_EACH_S)
            phases["slow"], wall["slow"] = time.monotonic(), time.time()
            sender.submit_all(submissions[2], threads=CLIENT_THREADS, deadline=began + 240)
            time.sleep(max(0.0, phases["slow"] + SLOW_S - time.monotonic()))
            sink.ok()
            phases["ok"], wall["ok"] = time.monotonic(), time.time()
            settle(cluster, sink, 240)
            took = time.monotonic() - began
        statuses = collections.Counter(r.status for r in sink.requests)
        # The sink stamps a slow answer (wall clock) after its sleep, so effects stamped
        # inside the slow window were all answered slowly (503s came back at once).
        slow_answers = sum(1 for r in sink.requests
                           if r.effect and wall["slow"] < r.at <= wall["ok"])
        result = audit(cluster, sink, [s for batch in submissions for s in batch])
        report("destination down/5xx/slow/ok", result, seconds=took, kills=0,
               sink_statuses=dict(statuses), delivered_while_slow=slow_answers,
               all_delivered_after_ok_s=round(time.monotonic() - phases["ok"], 1))
        assert result.problems == []
        assert result.lost == 0 and result.parked == 0
        assert statuses[503] > 0 and slow_answers > 0
        assert result.effects == result.deliveries


# --------------------------------------------------------------------------------------
# 4. one poison document among good ones
# --------------------------------------------------------------------------------------


def test_poison_document_is_parked_and_the_good_ones_are_unaffected(
        tmp_path: Path, postgres: PostgresServer, rabbitmq: RabbitMQServer) -> None:
    marker = f"POISON-{secrets.token_hex(4)}"
    position = POISON_GOOD_DOCUMENTS // 2
    documents = make_documents(POISON_GOOD_DOCUMENTS + 1, "psn", poison={position: marker})
    submissions = [Submission(d) for d in documents]
    retry = RetryPolicy(attempts=POISON_ATTEMPTS, first_delay_s=0.2, max_delay_s=1.0)
    with HttpSink() as sink, \
            scaled_out(tmp_path, postgres, fresh_vhost(rabbitmq),
                       routes_document(sink, retry=retry, rules=RULES)) as cluster:
        sink.poison(marker.encode(), 500)
        began = time.monotonic()
        with Sender(cluster.urls) as sender:
            sender.submit_all(submissions, threads=CLIENT_THREADS, deadline=began + 120)
            settle(cluster, sink, 120)
            took = time.monotonic() - began
            poison = submissions[position]
            assert poison.receipt is not None
            document = str(poison.document)
            seen = httpx.get(f"{cluster.urls()[0]}/api/v1/edocs/{document}",
                             headers={"X-API-Key": f"dev-{poison.outgoing.system}-key"},
                             timeout=10).json()
        result = audit(cluster, sink, submissions, poisoned=frozenset({document}))
        rows = delivery_rows(cluster.engine)
        parked = [r for r in rows if r.document == document]
        good = [r for r in rows if r.document != document]
        poison_requests = [r for r in sink.requests if r.key in {p.key for p in parked}]
        with cluster.engine.connect() as conn:
            payload = conn.execute(sa.text(
                "SELECT p.data FROM payloads p JOIN documents d ON d.payload_sha256 = p.sha256"
                " WHERE d.id = :id"), {"id": document}).scalar()
        report("poison", result, seconds=took, kills=0,
               poison_requests=len(poison_requests),
               poison_reason=parked[0].last_error if parked else None,
               good_retried=sum(1 for r in good if r.attempts != 1))
        assert result.problems == []
        assert len(parked) == 1 and parked[0].state == "parked"
        assert parked[0].attempts == POISON_ATTEMPTS
        assert f"gave up after {POISON_ATTEMPTS} attempt(s)" in (parked[0].last_error or "")
        assert "HTTP 500" in (parked[0].last_error or "")
        assert len(poison_requests) == POISON_ATTEMPTS
        assert not any(r.effect for r in poison_requests)
        assert payload is not None and marker.encode() in bytes(payload)
        [view] = seen["deliveries"]
        assert view["state"] == "parked" and view["last_error"] == parked[0].last_error
        assert [h["action"] for h in view["history"]].count("retry") == POISON_ATTEMPTS - 1
        assert all(r.state == "delivered" and r.attempts == 1 for r in good)
        assert result.parked == 1 and result.lost == 0


# --------------------------------------------------------------------------------------
# 5. embedded ingress kill -9, 200 times
# --------------------------------------------------------------------------------------


def test_embedded_bus_killed_200_times_while_a_client_posts(tmp_path: Path) -> None:
    """One ``lgsp serve`` on SQLite, accepting and delivering, SIGKILLed at random moments
    (one in ten during start-up, the rest up to 0.8 s after it answers).

    A start costs ~1.4 s on the CI machine, so 200 kills take ~6 minutes whatever else
    happens; two client threads and a re-post of a sample (every packet whose answer a
    kill swallowed, plus 1,000 others) keep the rest of the scenario short.

    The client keeps posting; a packet without a 2xx is sent again once the bus is back,
    as the contract tells senders to do. A commit whose answer a kill swallowed shows up
    as a 200 "existing" answer to the retry: the figure ``answered_on_retry``.
    """
    rng = random.Random(20240517)
    documents = make_documents(40_000, "emb")
    submissions = [Submission(d) for d in documents]
    with HttpSink() as sink, \
            Cluster(tmp_path / "embedded", routes=routes_document(sink, rules=RULES),
                    lease_s=3.0, delivery_threads=2) as cluster:
        bus = cluster.add("embedded")
        bus.start()
        stop = threading.Event()
        began = time.monotonic()
        with Sender([bus.url], pause_s=0.05, max_pause_s=0.25, timeout_s=10) as sender:
            with background(lambda: sender.submit_all(
                    submissions, threads=2, deadline=began + 600, stop=stop), "client"):
                try:
                    for _ in range(INGRESS_KILLS):
                        if rng.random() < 0.1:
                            time.sleep(rng.uniform(0.0, 1.0))
                        else:
                            bus.wait_ready(60)
                            time.sleep(rng.uniform(0.0, 0.8))
                        if bus.alive():
                            bus.kill9()
                        bus.start()
                    bus.wait_ready(60)
                finally:
                    stop.set()
            submitted = time.monotonic() - began
            settle(cluster, sink, 300)
            took = time.monotonic() - began
            attempted = [s for s in submissions if s.attempts]
            accepted = [s for s in attempted if s.accepted]
            swallowed = [s for s in accepted if s.status == 200]
            again = swallowed + rng.sample([s for s in accepted if s.status != 200],
                                           min(1_000, len(accepted) - len(swallowed)))
            same = 0
            answers: collections.Counter[int] = collections.Counter()
            lock = threading.Lock()

            def repost(batch: Sequence[Submission]) -> None:
                nonlocal same
                for submission in batch:
                    response = sender.post_once(submission.outgoing)
                    with lock:
                        answers[response.status_code] += 1
                        body = response.json()
                        if body.get("id") == submission.document and body.get("existing"):
                            same += 1

            threads = [threading.Thread(target=repost, args=(again[i::3],)) for i in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
        result = audit(cluster, sink, attempted)
        report("embedded kill -9", result, seconds=took, kills=bus.kills,
               starts=bus.starts, submitted_in_s=round(submitted, 1),
               client=dict(sender.counts),
               answered_on_retry=len(swallowed), reposted=len(again),
               repost_answers=dict(answers), repost_same_id=same)
        assert bus.kills == INGRESS_KILLS
        assert result.problems == []
        assert result.lost == 0 and result.documents == len(attempted)
        assert answers == {200: len(again)} and same == len(again)


# --------------------------------------------------------------------------------------
# 6. the same document submitted concurrently
# --------------------------------------------------------------------------------------


def test_same_document_submitted_concurrently_is_one_document(
        tmp_path: Path, postgres: PostgresServer, rabbitmq: RabbitMQServer) -> None:
    rng = random.Random(6)
    documents = make_documents(DUPLICATED_DOCUMENTS, "dup")
    copies = [rng.randint(2, 5) for _ in documents]
    answers: list[list[tuple[int, dict[str, Any]]]] = [[] for _ in documents]
    failures: list[str] = []
    with HttpSink() as sink, \
            scaled_out(tmp_path, postgres, fresh_vhost(rabbitmq),
                       routes_document(sink, rules=RULES)) as cluster, \
            httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        urls = cluster.urls()
        lock = threading.Lock()

        def post(index: int, copy: int, barrier: threading.Barrier) -> None:
            outgoing = documents[index]
            try:
                barrier.wait(10)
                response = client.post(f"{urls[copy % len(urls)]}/api/v1/edocs",
                                       content=outgoing.data,
                                       headers={"X-API-Key": f"dev-{outgoing.system}-key"})
                with lock:
                    answers[index].append((response.status_code, response.json()))
            except Exception as exc:
                with lock:
                    failures.append(f"document {index} copy {copy}: {exc!r}")

        began = time.monotonic()
        for start in range(0, len(documents), 8):
            group = []
            for index in range(start, min(start + 8, len(documents))):
                barrier = threading.Barrier(copies[index])
                group += [threading.Thread(target=post, args=(index, c, barrier))
                          for c in range(copies[index])]
            for thread in group:
                thread.start()
            for thread in group:
                thread.join(60)
        submitted = time.monotonic() - began
        submissions = []
        verdicts: collections.Counter[str] = collections.Counter()
        for index, got in enumerate(answers):
            statuses = sorted(status for status, _ in got)
            ids = {body.get("id") for _, body in got}
            fresh = [body for status, body in got if status == 202]
            if (len(got) == copies[index] and statuses == [200] * (copies[index] - 1) + [202]
                    and len(ids) == 1 and not fresh[0]["existing"]
                    and all(body["existing"] for status, body in got if status == 200)):
                verdicts["one id, one 202, the rest 200 existing"] += 1
            else:
                verdicts[f"wrong: {statuses} ids={len(ids)}"] += 1
            if fresh:
                submissions.append(Submission(documents[index], status=202, receipt=fresh[0],
                                              attempts=len(got)))
        settle(cluster, sink, 120)
        took = time.monotonic() - began
        result = audit(cluster, sink, submissions)
        per_key = collections.Counter(r.key for r in sink.requests)
        report("concurrent duplicates", result, seconds=took, kills=0,
               posts=sum(copies), submitted_in_s=round(submitted, 1),
               verdicts=dict(verdicts), failures=len(failures),
               max_requests_per_key=max(per_key.values(), default=0))
        assert failures == []
        assert verdicts == {"one id, one 202, the rest 200 existing": DUPLICATED_DOCUMENTS}
        assert result.problems == []
        assert result.documents == DUPLICATED_DOCUMENTS and result.lost == 0
        assert result.effects == result.deliveries
