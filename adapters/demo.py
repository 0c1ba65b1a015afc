"""``lgsp demo``: the sample province, end to end, on one machine, in one command.

A newcomer should see the whole job of the bus before reading any code: four systems of
different vendors and generations, each speaking its own protocol over real sockets,
exchanging official documents through the bus and answering them with business
statuses, while the bus tracks every delivery. The demo starts the bus on the embedded
default (SQLite in a temporary folder) with the four adapters, and one simulator per
system: eOffice (SOAP), VNPT-iOffice (an axis-SDK client of the bus's /vxp facade), HCM
Egov (REST, polled outbox) and the national axis (signed JSON API, polled).

Four journeys run at once: a document from each system to another, and one to an agency
outside the province through the national axis. Each recipient's system answers 01
(arrived), 03 (accepted) and 06 (completed); each status travels back through the
sender's own adapter. ``--check`` runs without a display and exits 0 only when every
journey completed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TextIO

import structlog
import uvicorn
import yaml

from adapters.eoffice.simulator import EofficeSimulator
from adapters.hcm_egov.simulator import HcmEgovSimulator
from adapters.national_axis.simulator import AxisSimulator
from adapters.vnpt_ioffice.simulator import IofficeSimulator
from bus import logging as bus_logging
from bus.api.rest import create_app
from bus.api.vxp_systems import dev_secret
from bus.app import Bus
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.runtime import build_bus, running
from bus.settings import REPO_ROOT, load_settings
from bus.store.queries import Viewer, document_detail

EOFFICE, IOFFICE, COMMUNE_31, COMMUNE_32 = ("000.00.12.H37", "000.00.00.H37",
                                            "000.00.31.H37", "000.00.32.H37")
OUTSIDE = "000.00.00.G22"
AXIS_ID, AXIS_SECRET = "00.37.W00", "demo-national-axis-secret"
OUTSIDE_SYSTEM = "000.00.00.G22"
STEPS = ("sent", "delivered", "01", "03", "06")
STATUS_NAMES = {"01": "arrived", "03": "accepted", "06": "completed"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Journey:
    """One document and the three statuses that answer it."""

    title: str
    edoc: Edoc
    send: Callable[[bytes], None]
    answer: Callable[[bytes], None]
    recipient: str
    document: str | None = None
    step: int = 0
    transport: str = "—"
    business: str = "—"
    log: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.step == len(STEPS)


class Province:
    """The simulators, the bus and the journeys, started and stopped together."""

    def __init__(self, workdir: Path, **settings: Any) -> None:
        self.workdir = workdir
        self.overrides = settings
        self.eoffice = EofficeSimulator(port=_free_port())
        self.egov = HcmEgovSimulator(port=_free_port())
        self.axis = AxisSimulator({AXIS_ID: AXIS_SECRET, OUTSIDE_SYSTEM: "outside-secret"},
                                  port=_free_port())
        self.port = _free_port()
        self.bus: Bus | None = None
        self.ioffice = IofficeSimulator(f"http://127.0.0.1:{self.port}/vxp", IOFFICE,
                                        dev_secret("vnpt_ioffice"))

    def _routes(self) -> Path:
        raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text("utf-8"))
        options = {
            "eoffice": {"endpoint": self.eoffice.url, "timeout_s": 10},
            "hcm_egov": {**raw["destinations"]["hcm_egov"]["options"],
                         "base_url": self.egov.base_url, "poll_interval_s": 0.5},
            "national_axis": {**raw["destinations"]["national_axis"]["options"],
                              "endpoint": self.axis.endpoint, "poll_interval_s": 0.5},
        }
        for name, opts in options.items():
            raw["destinations"][name]["options"] = opts
        raw["destinations"].pop("archive", None)
        raw["rules"] = [r for r in raw.get("rules", [])
                        if "archive" not in (r.get("copy_to") or [])
                        and r.get("deliver_to") != "archive"]
        raw["defaults"]["retry"] = {"attempts": 20, "first_delay_s": 0.5, "max_delay_s": 3}
        for destination in raw["destinations"].values():
            destination.pop("retry", None)
        path = self.workdir / "routes.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "utf-8")
        return path

    @contextlib.contextmanager
    def started(self, log: TextIO) -> Iterator[Bus]:
        creds = self.egov.credentials
        os.environ.update({"LGSP_HCM_EGOV_ACCESS_KEY": creds.access_key,
                           "LGSP_HCM_EGOV_SECRET_KEY": creds.secret_key,
                           "LGSP_NATIONAL_AXIS_SECRET": AXIS_SECRET})
        self.axis.host(OUTSIDE, OUTSIDE_SYSTEM)
        saved_structlog, saved_handlers = structlog.get_config(), logging.root.handlers[:]
        bus_logging.configure(json=True, file=log)
        settings = load_settings(
            environ={}, data_dir=self.workdir / "var", routes=self._routes(), port=self.port,
            vxp_systems=REPO_ROOT / "config" / "vxp_systems.yaml",
            poll_interval_s=0.1, sweep_interval_s=1.0, delivery_threads=4,
            **self.overrides)
        with contextlib.ExitStack() as stack:

            def restore_logging() -> None:
                structlog.configure(**saved_structlog)
                logging.root.handlers[:] = saved_handlers
            stack.callback(restore_logging)
            for sim in (self.eoffice, self.egov, self.axis):
                sim.start()
            stack.callback(self.eoffice.stop)
            stack.callback(self.egov.close)
            stack.callback(self.axis.stop)
            stack.callback(self.ioffice.close)
            bus = build_bus(settings)
            self.bus = bus
            stack.enter_context(running(bus, deliver=True))
            server = uvicorn.Server(uvicorn.Config(
                create_app(bus), host="127.0.0.1", port=self.port, log_config=None,
                access_log=False, lifespan="off"))
            thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
            thread.start()
            deadline = time.monotonic() + 20
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)

            def stop_server() -> None:
                server.should_exit = True
                thread.join(10)
            stack.callback(stop_server)
            yield bus

    # ---- the four journeys -------------------------------------------------------------

    def journeys(self, round_: int = 1) -> list[Journey]:
        def edoc(sender: str, recipient: str, subject: str, number: str) -> Edoc:
            return (EdocBuilder(sender).to(recipient).code(f"{number}-{round_}", "UBND-VP")
                    .promulgated("Lạng Sơn", date.today()).subject(subject)
                    .signer("Nguyễn Văn An", "Chánh Văn phòng").document_type(1, "Công văn")
                    .attach("cong-van.pdf", b"%PDF-1.4\n% demo\n", "application/pdf")
                    .build())

        def soap(packet: bytes) -> None:
            self.eoffice.send_to_bus(f"http://127.0.0.1:{self.port}/soap", "dev-eoffice-key",
                                     packet)

        def vxp_edoc(to: str) -> Callable[[bytes], None]:
            return lambda packet: _ok(self.ioffice.send_edoc(packet, to=[to]))

        def vxp_status(packet: bytes) -> None:
            _ok(self.ioffice.send_status(packet))

        def outbox(packet: bytes) -> None:
            self.egov.put_outbox(packet)

        def from_outside(packet: bytes) -> None:
            self.axis.inject(AXIS_ID, packet, sender=OUTSIDE, message_type="status")

        return [
            Journey("eOffice → VNPT-iOffice", edoc(EOFFICE, IOFFICE,
                    "V/v triển khai trục liên thông văn bản cấp tỉnh", "101"),
                    soap, vxp_status, IOFFICE),
            Journey("VNPT-iOffice → HCM Egov", edoc(IOFFICE, COMMUNE_31,
                    "V/v báo cáo kết quả chuyển đổi số cấp xã", "102"),
                    vxp_edoc(COMMUNE_31), outbox, COMMUNE_31),
            Journey("HCM Egov → eOffice", edoc(COMMUNE_32, EOFFICE,
                    "V/v đề nghị hỗ trợ chữ ký số", "103"), outbox, soap, EOFFICE),
            Journey("eOffice → national axis", edoc(EOFFICE, OUTSIDE,
                    "V/v phối hợp liên thông văn bản với Văn phòng Chính phủ", "104"),
                    soap, from_outside, OUTSIDE),
        ]

    def advance(self, journey: Journey) -> None:
        """Moves a journey one step when what the last step waits for has happened."""
        if journey.step == 0:
            journey.send(packet_bytes(journey.edoc))
            journey.step = 1
            return
        detail = self.refresh(journey)
        if detail is None or journey.done:
            return
        states = [d.state for d in detail.deliveries]
        wanted = STEPS[journey.step]
        if wanted == "delivered":
            if states and all(s == "delivered" for s in states):
                journey.step += 1
            return
        previous = STEPS[journey.step - 1]
        if previous in STATUS_NAMES and not self._status_delivered(detail, previous):
            return
        status = status_for(journey.edoc, wanted, sender=journey.recipient,
                            description=f"Văn thư: {STATUS_NAMES[wanted]}")
        journey.answer(packet_bytes(status))
        journey.step += 1

    def refresh(self, journey: Journey) -> Any:
        """Reads the journey's transport states and latest business status from the bus."""
        detail = self._detail(journey)
        if detail is not None:
            states = sorted({d.state for d in detail.deliveries})
            journey.transport = ", ".join(states) or "—"
            latest = {s.organ_id: s.code for s in detail.latest_statuses}
            code = latest.get(journey.recipient)
            journey.business = f"{code} {STATUS_NAMES.get(code, '')}".strip() if code else "—"
        return detail

    def _detail(self, journey: Journey) -> Any:
        assert self.bus is not None
        if journey.document is None:
            journey.document = self._find(journey.edoc)
            if journey.document is None:
                return None
        return document_detail(self.bus.store.engine, journey.document,
                               Viewer(system="demo", operator=True))

    def _find(self, edoc: Edoc) -> str | None:
        import sqlalchemy as sa

        from bus.store.tables import documents

        assert self.bus is not None
        with self.bus.store.engine.connect() as conn:
            found: str | None = conn.execute(sa.select(documents.c.id).where(
                documents.c.document_id == edoc.document_id,
                documents.c.kind == "edoc")).scalar()
        return found

    def _status_delivered(self, detail: Any, code: str) -> bool:
        assert self.bus is not None
        for status in detail.business_statuses:
            if status.code == code:
                view = document_detail(self.bus.store.engine, status.status_document,
                                       Viewer(system="demo", operator=True))
                return bool(view.deliveries) and all(
                    d.state == "delivered" for d in view.deliveries)
        return False

    def final_step_done(self, journey: Journey) -> bool:
        detail = self._detail(journey)
        return detail is not None and self._status_delivered(detail, "06")


def _ok(reply: Any) -> None:
    if not reply.ok:
        raise RuntimeError(f"the facade refused: {reply.code} {reply.desc}")


def _render(journeys: list[Journey], port: int, elapsed: float, out: TextIO) -> None:
    width = 10
    lines = [f"lgsp demo — Lạng Sơn sample province, bus on http://127.0.0.1:{port} "
             f"({elapsed:4.1f} s)", ""]
    for i, j in enumerate(journeys, 1):
        filled = width * j.step // len(STEPS)
        bar = "█" * filled + "·" * (width - filled)
        lines.append(f" {i}. {j.title:26s} [{bar}] transport: {j.transport:10s} "
                     f"business: {j.business}")
    lines.append("")
    lines.append(" steps: sent → delivered → 01 arrived → 03 accepted → 06 completed "
                 "(each status delivered back to the sender's system)")
    out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
    out.flush()


def drive(province: Province, journeys: list[Journey], timeout_s: float,
          on_tick: Callable[[float], None]) -> bool:
    """Advances every journey until all completed or time is up; True when all did."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        province.ioffice.poll_once()
        for journey in journeys:
            province.advance(journey)
        on_tick(time.monotonic() - started)
        if all(j.done and province.final_step_done(j) for j in journeys):
            for journey in journeys:
                province.refresh(journey)
            on_tick(time.monotonic() - started)
            return True
        time.sleep(0.3)
    return False


def run(*, check: bool = False, timeout_s: float = 120.0, out: TextIO = sys.stdout) -> int:
    """Runs the demo; returns the exit code (0 when every journey completed)."""
    interactive = out.isatty() and not check
    with tempfile.TemporaryDirectory(prefix="lgsp-demo-") as tmp:
        workdir = Path(tmp)
        province = Province(workdir)
        log_path = workdir / "bus.log"
        with log_path.open("a", encoding="utf-8") as log, province.started(log):
            journeys = province.journeys()
            shown: dict[int, tuple[int, str, str]] = {}

            def tick(elapsed: float) -> None:
                if interactive:
                    _render(journeys, province.port, elapsed, out)
                    return
                for i, j in enumerate(journeys):
                    now = (j.step, j.transport, j.business)
                    if shown.get(i) != now:
                        shown[i] = now
                        out.write(f"[{elapsed:5.1f}s] {j.title}: step {j.step}/{len(STEPS)}, "
                                  f"transport {j.transport}, business {j.business}\n")
                        out.flush()

            started = time.monotonic()
            complete = drive(province, journeys, timeout_s, tick)
            elapsed = time.monotonic() - started
            counts = (len(province.eoffice.statuses), len(province.egov.statuses),
                      len(province.ioffice.received), len(province.axis.sent()))
        out.write(f"\n{'every journey completed' if complete else 'NOT complete'} in "
                  f"{elapsed:.1f} s; statuses received by eOffice={counts[0]}, "
                  f"HCM Egov={counts[1]}; packets collected by iOffice={counts[2]}; "
                  f"packets sent over the national axis={counts[3]}\n")
        if not complete:
            out.write("bus log (last lines):\n" + "".join(
                log_path.read_text("utf-8", errors="replace").splitlines(True)[-20:]))
    return 0 if complete else 1
