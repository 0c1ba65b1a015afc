"""A three-node RabbitMQ cluster loses a node, gets it back, then loses another, under load.

The bus's ``broker_url`` lists the three nodes (comma-separated); its delivery queues are
quorum queues, so each is replicated on every node and keeps a leader while two of the
three are up. Two ingress and two worker processes run on it while a client posts;
node 1 is SIGKILLed, the load goes on against the two survivors, node 1 comes back, then
node 2 is SIGKILLed and restarted. Deliveries must go on while each node is down:
publishers (the ingress's dispatcher, the workers' relays) and consumers must move to a
surviving node by themselves. The audit is the battery's: nothing lost, nothing
delivered twice as an effect at the destination; the raw repeats the broker caused
(redeliveries that reached the destination and the idempotency key absorbed) are
reported separately.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from pathlib import Path
from typing import Final

import pytest

from tests.cluster import Cluster, Progress, Sender, Submission, background, routes_document, soak
from tests.http_sink import HttpSink
from tests.reliability.battery_kit import RULES, audit, make_documents, report, scaled_out, settle
from tests.servers import PostgresServer, RabbitMQCluster

pytestmark = [pytest.mark.services, pytest.mark.slow]

DOCUMENTS: Final = soak(2_500)
DOWN_S: Final = 5.0


def _vhost(mq: RabbitMQCluster) -> str:
    name = f"lgsp-cluster-{secrets.token_hex(4)}"
    for args in (("add_vhost", name), ("set_permissions", "-p", name, "guest", ".*", ".*",
                                       ".*")):
        result = mq.rabbitmqctl(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    return name


def _members(mq: RabbitMQCluster, vhost: str) -> dict[str, int]:
    """Replicas per delivery queue, as the cluster reports them."""
    result = mq.rabbitmqctl("list_queues", "-p", vhost, "name", "type", "members",
                            "--formatter", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return {q["name"]: len(q.get("members") or []) for q in json.loads(result.stdout)}


def _count(cluster: Cluster, event: str) -> int:
    return sum(len(p.events(event)) for p in cluster.processes)


def test_rabbitmq_cluster_node_kill9_and_restart_under_load(
        tmp_path: Path, postgres: PostgresServer) -> None:
    documents = make_documents(DOCUMENTS, "rmq")
    submissions = [Submission(d) for d in documents]
    with RabbitMQCluster(3) as mq, HttpSink() as sink:
        vhost = _vhost(mq)
        with scaled_out(tmp_path, postgres, mq.url(vhost),
                        routes_document(sink, rules=RULES)) as cluster:
            # Quorum-queue declarations must reach disk before a kill (servers/rabbitmq.py kill9).
            time.sleep(2.0)
            replicas = _members(mq, vhost)
            timeline: list[str] = []
            while_down: list[int] = []
            halves = (submissions[:DOCUMENTS // 2], submissions[DOCUMENTS // 2:])
            began = time.monotonic()
            with Sender(cluster.urls) as sender:
                # One half of the load per kill, so each outage has traffic to carry
                # whatever the machine's speed.
                for victim, batch in enumerate(halves):
                    node = mq.nodes[victim]
                    progress = Progress()
                    with background(functools.partial(
                            sender.submit_all, batch, threads=4, deadline=began + soak(300),
                            progress=progress), "client"):
                        assert progress.wait_for(len(batch) // 5, soak(180)), progress.value
                        node.kill9()
                        timeline.append(f"{time.monotonic() - began:.1f}s kill node{victim + 1}")
                        # Connections on the dead node fail over within this.
                        time.sleep(2.0)
                        before = sink.effects
                        time.sleep(DOWN_S)
                        while_down.append(sink.effects - before)
                        timeline.append(f"{time.monotonic() - began:.1f}s "
                                        f"{progress.value}/{len(batch)} of half {victim + 1}")
                        node.restart()
                        mq.wait_members(3, 120)
                        timeline.append(f"{time.monotonic() - began:.1f}s node{victim + 1} "
                                        "back in the cluster")
                submitted = time.monotonic() - began
                settle(cluster, sink, soak(240))
                took = time.monotonic() - began
                client = dict(sender.counts)
            result = audit(cluster, sink, submissions)
            dead = [p.name for p in cluster.processes if not p.alive()]
            report("rabbitmq 3-node cluster, node kill -9", result, seconds=took, kills=2,
                   submitted_in_s=round(submitted, 1), client=client,
                   replicas=sorted(set(replicas.values())), timeline=timeline,
                   consumer_reconnects=_count(cluster, "consumer.connection_lost"),
                   publish_failures=_count(cluster, "dispatch.publish_failed"),
                   relay_failures=_count(cluster, "relay.failed"),
                   delivered_while_a_node_was_down=while_down,
                   broker_duplicates_at_destination=result.duplicate_requests,
                   dead_processes=dead)
            assert replicas and set(replicas.values()) == {3}, replicas
            assert result.problems == []
            assert result.lost == 0 and result.documents == DOCUMENTS
            assert dead == []
            assert all(n > 0 for n in while_down), while_down
            assert _count(cluster, "consumer.connection_lost") > 0
