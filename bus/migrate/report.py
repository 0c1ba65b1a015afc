"""The migration report an IT centre signs: HTML in Vietnamese for the agencies, CSV for
their spreadsheets, both written from one :class:`~bus.migrate.verify.Verification`."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import time
from pathlib import Path

from bus.migrate.verify import Verification

__all__ = ["write_reports"]

LABELS = {
    "acknowledged": "Đã được hệ thống đích xác nhận",
    "delivered": "Đã chuyển, chờ hệ thống đích xác nhận",
    "submitted": "Đã chuyển đổi, đang chờ gửi",
    "rejected": "Bị từ chối chuyển đổi",
    "mismatched": "Không khớp",
    "failed": "Gửi dở dang",
    "listed": "Chưa xử lý",
}
CSV_COLUMNS = ("record_id", "register", "year", "outcome", "outcome_vi", "reason", "document",
               "packets", "acknowledged", "references")


def _csv(verification: Verification) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for o in verification.outcomes:
        writer.writerow((o.record_id, o.register, o.year, o.outcome, LABELS[o.outcome],
                         o.reason, o.document or "", o.packets, o.acknowledged,
                         " ".join(o.references)))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _html(verification: Verification) -> bytes:
    v, job, e = verification, verification.job, html.escape
    counts = v.counts
    verdict = ("ĐẠT: mọi văn bản trong danh mục đã được hệ thống đích xác nhận, tệp đính kèm "
               "trùng khớp từng byte, hoặc bị từ chối có nêu lý do." if v.ok else
               f"CHƯA ĐẠT: {len(v.problems)} văn bản chưa được xác nhận hoặc không khớp.")
    rows = []
    for register, years in sorted(v.per_register.items()):
        for year, cell in sorted(years.items()):
            rows.append(f"<tr><td>{e(register)}</td><td>{e(year)}</td>"
                        f"<td>{cell['manifest']}</td><td>{cell.get('acknowledged', 0)}</td>"
                        f"<td>{cell.get('rejected', 0)}</td>"
                        f"<td>{cell.get('mismatched', 0) + cell.get('failed', 0)}</td></tr>")
    listed = [o for o in v.outcomes if o.outcome != "acknowledged"][:5000]
    details = "".join(
        f"<tr><td>{e(o.record_id)}</td><td>{e(o.register)}</td><td>{o.year}</td>"
        f"<td>{e(LABELS[o.outcome])}</td><td>{e(o.reason)}</td></tr>" for o in listed)
    summary = "".join(f"<tr><th>{e(label)}</th><td>{counts.get(k, 0)}</td></tr>"
                      for k, label in (("records", "Văn bản trong danh mục nguồn"),
                                       ("converted", "Đã chuyển đổi sang edXML"),
                                       ("handed_over", "Đã chuyển tới hệ thống đích"),
                                       *LABELS.items()))
    when = time.strftime("%d/%m/%Y %H:%M", time.localtime())
    manifest = ("nguyên vẹn" if v.manifest_ok else "ĐÃ BỊ THAY ĐỔI sau khi lập")
    page = f"""<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8">
<title>Báo cáo chuyển đổi dữ liệu văn bản — {e(job.id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}</style></head><body>
<h1>Báo cáo chuyển đổi cơ sở dữ liệu văn bản</h1>
<p>Mã công việc: <code>{e(job.id)}</code> · Lập lúc: {when}</p>
<p>Nguồn: {e(str(job.source.get('label', '')))} · Đơn vị sở hữu kho lưu trữ:
{e(job.owner)} · Hệ thống đích: {e(job.target)}</p>
<p>Danh mục nguồn (lập khi bắt đầu): {counts['records']} văn bản,
mã SHA-256 <code>{e(job.manifest_sha256 or '')}</code> — {manifest}.</p>
<h2>Kết luận</h2><p><strong>{e(verdict)}</strong></p>
<h2>Tổng hợp</h2><table>{summary}</table>
<h2>Theo sổ và năm</h2>
<table><tr><th>Sổ văn bản</th><th>Năm</th><th>Trong danh mục</th><th>Đã xác nhận</th>
<th>Bị từ chối</th><th>Không khớp</th></tr>{''.join(rows)}</table>
<h2>Văn bản chưa được xác nhận (kèm lý do)</h2>
<table><tr><th>Mã hồ sơ</th><th>Sổ</th><th>Năm</th><th>Kết quả</th><th>Lý do</th></tr>
{details}</table>
<p>Danh sách đầy đủ từng văn bản: tệp CSV cùng tên.</p>
</body></html>
"""
    return page.encode("utf-8")


def write_reports(verification: Verification, folder: Path) -> dict[str, str]:
    """Writes ``migration-<job>.html`` and ``.csv``; returns {path: SHA-256}."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for suffix, data in (("html", _html(verification)), ("csv", _csv(verification))):
        path = folder / f"migration-{verification.job.id}.{suffix}"
        path.write_bytes(data)
        written[str(path)] = hashlib.sha256(data).hexdigest()
    return written
