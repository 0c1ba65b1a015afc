"""Processes of one deployment start together: a supervisor, systemd or an orchestrator
brings up every ingress and worker process at once, often on a database that was just
created. Each must come up, whichever of them creates the schema.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import REPO_ROOT, Cluster, fresh_database, fresh_vhost, routes_document
from tests.http_sink import HttpSink
from tests.servers import PostgresServer, RabbitMQServer

pytestmark = [pytest.mark.services]

ROUNDS = 3
FIRST_USE_RUNS = 40
FIRST_USE_THREADS = 16
BURNERS = 4


def test_processes_started_together_on_a_fresh_database_all_come_up(
        tmp_path: Path, postgres: PostgresServer, rabbitmq: RabbitMQServer) -> None:
    broker_url = fresh_vhost(rabbitmq)
    crashed: list[str] = []
    with HttpSink() as sink:
        for round_ in range(ROUNDS):
            with Cluster(tmp_path / f"round-{round_}", routes=routes_document(sink),
                         database_url=fresh_database(postgres),
                         broker_url=broker_url) as cluster:
                processes = [cluster.add("ingress"), cluster.add("ingress"),
                             cluster.add("worker"), cluster.add("worker")]
                for process in processes:
                    process.start()
                for process in processes:
                    try:
                        process.wait_ready(60)
                    except RuntimeError:
                        tail = [line for line in process.log_text().splitlines()
                                if "Error" in line][-1:]
                        crashed.append(f"round {round_}: {process.name}: {tail}")
    print(f"\n[startup] {ROUNDS} rounds of 2 ingress + 2 workers started together on a "
          f"fresh database: {len(crashed)} process(es) died at start")
    for line in crashed:
        print(f"  {line}")
    assert crashed == []



_FIRST_USE = """
import os, sys, threading
from bus.edxml import EdocBuilder, packet_bytes, read_packet
packets = [packet_bytes(EdocBuilder("000.00.12.H37").to("000.00.31.H37")
                        .subject(f"Cong van {i}").signer("A").build(check=False))
           for i in range(THREADS)]
failures = []
barrier = threading.Barrier(THREADS)
def judge(data):
    barrier.wait()
    try:
        read_packet(data)
    except Exception as exc:
        failures.append(str(exc).splitlines()[0][:120])
threads = [threading.Thread(target=judge, args=(p,), daemon=True) for p in packets]
for t in threads: t.start()
for t in threads: t.join(HANG_S)
hung = sum(t.is_alive() for t in threads)
print(f"{len(failures)} {hung} {failures[0] if failures else ''}", flush=True)
os._exit(0)
"""


def test_concurrent_first_validations_in_a_fresh_process_all_succeed() -> None:
    """A restarted bus meets its senders' retries all at once: the first packets are
    judged together on the request threadpool, each compiling the edXML schemas on first
    use (bus.schemas.default_schemas: lru_cache lets every concurrent first caller
    compile). libxml2 initialises its built-in XSD types on the first compile without a
    lock, and compiling in parallel corrupts them: every packet of that process can then
    fail with "Internal error: xmlSchemaPValAttrNodeValue", or validation never returns.

    The race needs two threads really inside libxml2 at once, which two busy CPU loops
    make likely on a 2-core machine; each run is a fresh interpreter, as a restart is.
    """
    script = _FIRST_USE.replace("THREADS", str(FIRST_USE_THREADS)).replace("HANG_S", "20")
    burners = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 120"
                                 "\nwhile time.time() < end: pass"])
               for _ in range(BURNERS)]
    outcomes: collections.Counter[str] = collections.Counter()
    try:
        for _ in range(FIRST_USE_RUNS):
            try:
                run = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT,
                                     capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                outcomes["interpreter did not exit"] += 1
                continue
            failed, hung, first = [*run.stdout.split(" ", 2), "", "", ""][:3]
            if run.returncode != 0 or not failed.isdigit():
                outcomes[f"crashed: {run.stderr.strip()[-200:]}"] += 1
            elif int(hung):
                outcomes[f"{hung} of {FIRST_USE_THREADS} validations never returned"] += 1
            elif int(failed):
                outcomes[f"{failed} of {FIRST_USE_THREADS} refused: {first.strip()}"] += 1
            else:
                outcomes["all valid"] += 1
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(10)
    print(f"\n[first use] {FIRST_USE_RUNS} fresh processes x {FIRST_USE_THREADS} concurrent "
          "first validations, under CPU load:")
    for outcome, count in outcomes.most_common():
        print(f"  {count} x {outcome}")
    assert outcomes == {"all valid": FIRST_USE_RUNS}
