"""The deployment kit in ops/, used as an operator would: the systemd units pass
systemd-analyze, the RabbitMQ definitions import into a broker and the PostgreSQL set-up
script runs on a server; then the bus migrates as the owner role and takes, delivers and
purges documents as the application role through the imported vhost and user, while the
application role cannot change the schema."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import sqlalchemy as sa

from bus import errors
from bus.app import Bus
from bus.cli import main as lgsp
from bus.delivery.broker import RabbitConsumer, RabbitDispatcher
from bus.delivery.worker import DeliveryWorker
from bus.edxml import EdocBuilder, packet_bytes
from bus.maintenance.retention import Policy, purge
from bus.settings import load_settings
from bus.store.tables import deliveries, documents
from tests.cluster import routes_document, wait_until, write_routes
from tests.http_sink import HttpSink
from tests.servers import PostgresServer, RabbitMQServer

OPS = Path(__file__).resolve().parents[2] / "ops"
UNITS = ("lgsp-serve.service", "lgsp-worker@.service", "lgsp-backup.service",
         "lgsp-backup.timer")


def _units_here(tmp_path: Path) -> Path:
    """The units with ExecStart's lgsp and the env file pointing at this machine's."""
    lgsp_bin = shutil.which("lgsp") or str(Path(shutil.which("python") or "").parent / "lgsp")
    env = tmp_path / "lgsp.env"
    shutil.copy(OPS / "systemd" / "lgsp.env.example", env)
    for name in UNITS:
        text = (OPS / "systemd" / name).read_text()
        text = text.replace("/opt/lgsp/venv/bin/lgsp", lgsp_bin)
        text = text.replace("/etc/lgsp/lgsp.env", str(env))
        (tmp_path / name.replace("@.", "@1.")).write_text(text)
    return tmp_path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (package systemd)")
def test_systemd_units_verify_cleanly_and_are_hardened(tmp_path: Path) -> None:
    where = _units_here(tmp_path)
    names = [str(where / n.replace("@.", "@1.")) for n in UNITS]
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *names],
                          capture_output=True, text=True, check=False, cwd=where)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    for name in ("lgsp-serve.service", "lgsp-worker@1.service"):
        text = (where / name).read_text()
        for line in ("User=lgsp", "ProtectSystem=strict", "ReadWritePaths=/var/lib/lgsp",
                     "NoNewPrivileges=yes", "LimitNOFILE=65536", "Restart=on-failure"):
            assert line in text.splitlines(), f"{name}: {line}"
        security = subprocess.run(["systemd-analyze", "security", "--offline=true",
                                   str(where / name)], capture_output=True, text=True,
                                  check=False, cwd=where)
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
        assert level is not None, security.stdout + security.stderr
        print(f"\n{name}: systemd-analyze security exposure {level.group(1)}")
        assert float(level.group(1)) <= 4.0


def test_systemd_analyze_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt value is reported on stderr."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    where = _units_here(tmp_path)
    broken = where / "broken.service"
    broken.write_text((where / "lgsp-serve.service").read_text()
                      .replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(broken)],
                          capture_output=True, text=True, check=False, cwd=where)
    assert "ProtectSystem" in done.stderr or "protect system" in done.stderr


# ------------------------------------------------------------------ RabbitMQ + PostgreSQL


def _rabbit(rabbitmq: RabbitMQServer) -> str:
    """Imports ops/rabbitmq/definitions.json, gives the lgsp user a password."""
    done = rabbitmq.rabbitmqctl("import_definitions", str(OPS / "rabbitmq" / "definitions.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    password = secrets.token_hex(8)
    done = rabbitmq.rabbitmqctl("change_password", "lgsp", password)
    assert done.returncode == 0, done.stdout + done.stderr
    return f"amqp://lgsp:{password}@{rabbitmq.host}:{rabbitmq.port}/lgsp"


def _postgres(postgres: PostgresServer) -> tuple[str, str, str]:
    """Runs ops/postgresql/setup.sql with names of its own; (owner, app, superuser) URLs."""
    tag = secrets.token_hex(3)
    names = {"dbname": f"lgsp_kit_{tag}", "owner": f"lgsp_owner_{tag}",
             "app": f"lgsp_app_{tag}"}
    psql = shutil.which("psql")
    assert psql, "psql is not installed (package postgresql-client)"
    args = [psql, "-X", "-v", "ON_ERROR_STOP=1", "-v", "owner_password=o-secret",
            "-v", "app_password=a-secret", "-d", postgres.libpq_url,
            "-f", str(OPS / "postgresql" / "setup.sql")]
    for key, value in names.items():
        args[2:2] = ["-v", f"{key}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    base = f"postgresql+psycopg://{{}}:{{}}@{postgres.host}:{postgres.port}/{names['dbname']}"
    return (base.format(names["owner"], "o-secret"), base.format(names["app"], "a-secret"),
            postgres.url.rsplit("/", 1)[0] + "/" + names["dbname"])


def _edoc(number: int) -> bytes:
    return packet_bytes(EdocBuilder("000.00.12.H37").to("000.00.31.H37", "000.00.00.H37")
                        .subject(f"Công văn {number} qua bộ triển khai")
                        .signer("Nguyễn Văn A", "Giám đốc").code(str(number), "CV").build())


@pytest.mark.services
@pytest.mark.slow
def test_the_bus_runs_as_the_app_role_through_the_imported_vhost(
        tmp_path: Path, postgres: PostgresServer, rabbitmq: RabbitMQServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    owner_url, app_url, _ = _postgres(postgres)
    broker_url = _rabbit(rabbitmq)

    # An empty database and the app role: it may not create the tables.
    with pytest.raises(errors.SchemaOutdated, match="lgsp db upgrade"):
        Bus(load_settings(environ={}, data_dir=tmp_path / "var", database_url=app_url))
    assert lgsp(["db", "upgrade", "--database-url", owner_url]) == 0
    capsys.readouterr()

    with HttpSink() as sink:
        routes = write_routes(tmp_path / "routes.yaml", routes_document(sink))
        bus = Bus(load_settings(environ={}, data_dir=tmp_path / "var", database_url=app_url,
                                broker_url=broker_url, routes=routes))
        dispatcher = RabbitDispatcher(bus.store, broker_url)
        bus.dispatcher = dispatcher
        consumer = RabbitConsumer(broker_url, DeliveryWorker.from_bus(bus, name="kit"),
                                  lambda: bus.reloader.current().table.destinations,
                                  name="kit", reconnect_max_s=2.0)
        consumer.start()
        try:
            for number in range(10):
                bus.submit(_edoc(number), system="eoffice", channel="rest")

            def delivered() -> bool:
                with bus.store.engine.connect() as conn:
                    return conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                                        .where(deliveries.c.state == "delivered")
                                        ).scalar_one() == 20
            assert wait_until(delivered, 60)
        finally:
            assert consumer.stop(10)
            dispatcher.close()
        queues = rabbitmq.rabbitmqctl("list_queues", "-p", "lgsp", "name", "type", "policy",
                                      "--formatter", "json")
        ours = [q for q in json.loads(queues.stdout) if q["name"].startswith("lgsp.deliver.")]
        assert ours and all(q["type"] == "quorum" and q["policy"] == "lgsp-deliver"
                            for q in ours), ours

        # The nightly backup runs as the app role too (pg_dump needs only SELECT).
        settings = tmp_path / "lgsp.yaml"
        settings.write_text(f"database_url: {app_url}\ndata_dir: {tmp_path / 'var'}\n")
        capsys.readouterr()
        assert lgsp(["backup", "-o", str(tmp_path / "backup"), "--config", str(settings)]) \
            == 0, capsys.readouterr().out

        # Retention deletes rows: DML, which the app role has.
        with bus.store.begin() as conn:
            conn.execute(documents.update().values(received_at=time.time() - 4000 * 86400))
        assert purge(bus.store.engine, Policy.from_settings({"edoc": "3650d"}), actor="t",
                     pause_s=0).documents == 10
        bus.close()

    app = psycopg.connect(app_url.replace("+psycopg", ""), autocommit=True)
    try:
        for statement in ("CREATE TABLE intruder (id int)", "DROP TABLE documents",
                          "ALTER TABLE documents ADD COLUMN x int", "TRUNCATE events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
    finally:
        app.close()


@pytest.mark.services
def test_the_definitions_refuse_the_lgsp_user_elsewhere(rabbitmq: RabbitMQServer) -> None:
    """Least privilege on the broker: the lgsp user has no right on the default vhost."""
    import pika

    url = _rabbit(rabbitmq).rsplit("/", 1)[0] + "/" + quote("/", safe="")
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(url)).close()
