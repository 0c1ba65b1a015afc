"""Several private RabbitMQ nodes forming one cluster."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from urllib.parse import quote

from tests.servers.process import (
    LOOPBACK,
    ServerError,
    _failure,
    _Managed,
)
from tests.servers.rabbitmq import RabbitMQServer


class RabbitMQCluster(_Managed):
    """``size`` RabbitMQ nodes on loopback forming one cluster, each started, killed and
    restarted by its own pid like a single :class:`RabbitMQServer`.

    Every node has its own node name, AMQP and distribution ports, data directory and a
    copy of one shared cookie. They share one epmd (run by the first node, on a private
    port via ERL_EPMD_PORT): distribution finds a peer by asking epmd for its name, so
    nodes on separate epmds could not see each other. The others join the first through
    classic-config peer discovery at their first boot, and rejoin by themselves after a
    restart, their membership being on disk.

    Killing the first node leaves its epmd up (kill9 spares epmd, as a VM crash would),
    so the survivors keep finding each other.
    """

    def __init__(self, size: int = 3, *, startup_timeout: float = 120.0) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.size = size
        self.startup_timeout = startup_timeout
        self.cookie = secrets.token_hex(16).upper()
        self.nodes: list[RabbitMQServer] = []

    @staticmethod
    def missing_binaries() -> list[str]:
        return RabbitMQServer.missing_binaries()

    def start(self) -> None:
        if self.nodes:
            raise ServerError("the cluster was already started")
        first = RabbitMQServer(startup_timeout=self.startup_timeout, cookie=self.cookie)
        self.nodes.append(first)
        first.start()
        discovery = ("cluster_formation.peer_discovery_backend = "
                     "rabbit_peer_discovery_classic_config\n"
                     f"cluster_formation.classic_config.nodes.1 = {first.nodename}\n")
        for _ in range(1, self.size):
            node = RabbitMQServer(startup_timeout=self.startup_timeout, cookie=self.cookie,
                                  epmd_port=first.epmd_port, extra_conf=discovery)
            self.nodes.append(node)
            node.start()
        self.wait_members(self.size, self.startup_timeout)

    def running_members(self, via: RabbitMQServer | None = None) -> set[str]:
        """Node names the cluster reports running, asked of ``via`` or any live node."""
        for node in [via] if via is not None else self.nodes:
            if node is None or not node.is_running():
                continue
            result = node.rabbitmqctl("cluster_status", "--formatter", "json", timeout=30)
            if result.returncode == 0:
                with contextlib.suppress(ValueError):
                    return set(json.loads(result.stdout).get("running_nodes", []))
        return set()

    def wait_members(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.running_members()) < count:
            if time.monotonic() > deadline:
                raise _failure(f"the cluster has {self.running_members()} running, wanted "
                               f"{count}", *(node.log_file for node in self.nodes))
            time.sleep(0.5)

    def url(self, vhost: str = "/") -> str:
        """One AMQP URL listing every node, comma-separated (``broker_url`` syntax)."""
        hosts = ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes)
        return f"amqp://guest:guest@{hosts}/{quote(vhost, safe='')}"

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """rabbitmqctl on the first running node (cluster-wide commands)."""
        for node in self.nodes:
            if node.is_running():
                return node.rabbitmqctl(*args, timeout=timeout)
        raise ServerError("no node of the cluster is running")

    def stop(self) -> None:
        """Stops every node, the first (which runs epmd) last."""
        failures = []
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception as exc:
                failures.append(repr(exc))
        self.nodes = []
        if failures:
            raise ServerError("; ".join(failures))

    def __repr__(self) -> str:
        return f"<RabbitMQCluster {[n.nodename for n in self.nodes]}>"
