"""The printable summary in a bundle: one page in Vietnamese for a dispute.

Who sent what and when, who was sent it and when it was delivered (with the receipt the
destination gave), what each recipient's clerk reported, every event of the journey and
the seals that prove them. Self-contained HTML (no script, no external asset), times in
the province's zone, every value escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from bus.store.queries import DocumentDetail

STATES: Final = {
    "pending": "Đang chờ gửi", "queued": "Đã xếp hàng", "delivering": "Đang gửi",
    "awaiting": "Chờ đơn vị nhận lấy về", "delivered": "Đã chuyển thành công",
    "refused": "Bị đơn vị nhận từ chối", "parked": "Tạm dừng, chờ quản trị xử lý"}
STATUSES: Final = {
    "01": "Đã đến", "02": "Từ chối tiếp nhận", "03": "Đã tiếp nhận", "04": "Đã phân công",
    "05": "Đang xử lý", "06": "Hoàn thành", "13": "Yêu cầu thu hồi",
    "15": "Đồng ý thu hồi/cập nhật", "16": "Từ chối thu hồi/cập nhật"}
ACTIONS: Final = {
    "accepted": "Trục tiếp nhận văn bản", "routed": "Định tuyến tới đơn vị nhận",
    "attempt": "Lần gửi", "delivered": "Đã chuyển tới hệ thống nhận",
    "awaiting": "Đặt vào hộp thư chờ lấy về", "acknowledged": "Hệ thống nhận xác nhận đã lấy",
    "retry": "Gửi lỗi, sẽ gửi lại", "parked": "Tạm dừng gửi", "refused": "Bị từ chối",
    "requeued": "Quản trị cho gửi lại", "purged": "Xoá theo thời hạn lưu trữ"}

_STYLE: Final = ("body{font-family:'Times New Roman',serif;margin:2em;max-width:60em}"
                 "table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}"
                 "td,th{border:1px solid #444;padding:.25em .5em;text-align:left;"
                 "vertical-align:top}th{background:#eee}code{font-size:.85em;"
                 "word-break:break-all}@media print{body{margin:0}}")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


class _Clock:
    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)

    def at(self, value: float | str | None) -> str:
        if value is None or value == "":
            return ""
        moment = datetime.fromisoformat(value) if isinstance(value, str) \
            else datetime.fromtimestamp(float(value), self.zone)
        return moment.astimezone(self.zone).strftime("%H:%M:%S ngày %d/%m/%Y")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _vietnamese(note: str) -> str:
    if note.startswith("the forwarded bytes are no longer stored"):
        return "Bản đã chuyển không còn được lưu (đã xoá theo thời hạn lưu trữ)."
    if note.startswith("the sender's own bytes were not kept"):
        return ("Trục không lưu riêng bản của bên gửi; bản đã chuyển chỉ khác bản đó ở phần "
                "TraceHeader do trục thêm vào. Bản bên gửi giữ có thể đối chiếu với mã băm "
                "SHA-256 bản gốc ở trên.")
    if "not sealed yet" in note:
        return (f"{note.split()[0]} sự kiện chưa được niêm phong; hãy trích xuất lại sau "
                "ít phút để có bằng chứng cho mọi sự kiện.")
    return note


def summary_html(detail: DocumentDetail, events: Sequence[dict[str, Any]],
                 seals: Sequence[dict[str, Any]], top: dict[str, Any] | None,
                 notes: Sequence[str], *, zone: str, digests: dict[str, str | None],
                 names: Mapping[str, str]) -> str:
    """``names`` are the directory's organisation names, shown beside their codes."""
    clock = _Clock(zone)

    def organ(code: str | None) -> str:
        name = names.get(code or "")
        return _e(f"{code} – {name}" if name else code)
    facts = [("Mã văn bản (DocumentId)", _e(detail.document_id)),
             ("Số, ký hiệu", _e(detail.code)), ("Trích yếu", _e(detail.subject)),
             ("Đơn vị gửi", organ(detail.sender)), ("Hệ thống gửi", _e(detail.system)),
             ("Trục nhận lúc", _e(clock.at(detail.received_at))),
             ("Mã trên trục", f"<code>{_e(detail.id)}</code>"),
             ("Mã băm SHA-256 bản gốc bên gửi", f"<code>{_e(digests.get('sender'))}</code>"),
             ("Mã băm SHA-256 bản trục đã chuyển",
              f"<code>{_e(digests.get('forwarded'))}</code>")]
    recipients = [[organ(d.effective_recipient) + ("" if d.recipient == d.effective_recipient
                                                   else f" (gửi tới {_e(d.recipient)})"),
                   _e(d.destination), _e(STATES.get(d.state, d.state)),
                   _e(clock.at(d.delivered_at)), f"<code>{_e(d.receipt_reference)}</code>",
                   _e(d.last_error)] for d in detail.deliveries]
    statuses = [[organ(s.organ_id), _e(f"{s.code} – {STATUSES.get(s.code, s.meaning)}"),
                 _e(clock.at(s.received_at))] for s in detail.business_statuses]
    journey = []
    for row in events:
        said = json.loads(row["detail"]) if row["detail"] else {}
        what = ACTIONS.get(row["action"], row["action"])
        extra = said.get("reason") or said.get("recipient") or said.get("reference") or ""
        journey.append([_e(clock.at(row["at"])), _e(what), _e(row["actor"]), _e(extra),
                        str(row["id"])])
    proof = [[str(s["number"]), f"{s['first_id']}–{s['last_id']}",
              _e(clock.at(s["sealed_at"])), f"<code>{_e(s['hash'])}</code>"] for s in seals]
    parts = [
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\">",
        f"<title>Hồ sơ chứng cứ – {_e(detail.document_id)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Hồ sơ chứng cứ văn bản điện tử</h1>",
        "<p>Trích xuất từ trục liên thông văn bản của tỉnh. Mọi sự kiện dưới đây được "
        "niêm phong bằng chuỗi mã băm SHA-256; kiểm tra bằng lệnh "
        "<code>lgsp evidence verify</code> trên tệp hồ sơ.</p>",
        "<h2>Văn bản</h2>", _table(["Thông tin", "Giá trị"], facts),
        "<h2>Đơn vị nhận và trạng thái chuyển</h2>",
        _table(["Đơn vị nhận", "Hệ thống đích", "Trạng thái", "Chuyển lúc",
                "Mã biên nhận", "Lỗi gần nhất"], recipients),
        "<h2>Trạng thái xử lý do đơn vị nhận báo</h2>",
        _table(["Đơn vị", "Trạng thái", "Trục nhận lúc"], statuses)
        if statuses else "<p>Chưa có.</p>",
        "<h2>Diễn biến</h2>",
        _table(["Thời điểm", "Sự kiện", "Tác nhân", "Chi tiết", "Số sự kiện"], journey),
        "<h2>Niêm phong</h2>",
        _table(["Dấu niêm phong số", "Sự kiện", "Niêm phong lúc", "Mã băm"], proof)
        if proof else "<p>Các sự kiện chưa được niêm phong.</p>",
    ]
    if top is not None:
        parts.append(f"<p>Đầu chuỗi khi trích xuất: dấu số {top['number']}, mã băm "
                     f"<code>{_e(top['hash'])}</code>.</p>")
    if notes:
        parts.append("<h2>Ghi chú</h2><ul>" + "".join(f"<li>{_e(_vietnamese(n))}</li>"
                                                        for n in notes)
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
