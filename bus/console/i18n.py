"""The console's words in Vietnamese (the default) and English.

One catalogue, keyed by a short English id; a missing translation falls back to English
and a missing key shows the key, so a gap is visible but never an error. Codes (error
codes, states in the API, DocumentIds) are not translated: they are what an IT officer
quotes on the phone. Delivery states are shown translated with the code beside them.
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("vi", "en")
DEFAULT: Final = "vi"

_CATALOGUE: Final[dict[str, tuple[str, str]]] = {
    # key: (Vietnamese, English)
    "app": ("Bảng điều khiển LGSP", "LGSP console"),
    "documents": ("Văn bản", "Documents"),
    "queues": ("Hàng đợi", "Queues"),
    "state": ("Trạng thái trục", "Bus state"),
    "logout": ("Đăng xuất", "Log out"),
    "login": ("Đăng nhập", "Log in"),
    "user": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong user name or password."),
    "login_throttled": ("Đăng nhập sai quá nhiều lần; hãy chờ năm phút.",
                        "Too many failed logins; wait five minutes."),
    "session_ended": ("Phiên làm việc đã hết hạn; hãy đăng nhập lại.",
                      "Your session has ended; log in again."),
    "role_operator": ("Vận hành viên (toàn tỉnh)", "Operator (whole province)"),
    "role_officer": ("Cán bộ cơ quan", "Agency officer"),
    "role_auditor": ("Kiểm tra viên (chỉ xem)", "Auditor (read-only)"),
    "search": ("Tìm kiếm", "Search"),
    "document_id": ("Mã văn bản (DocumentId)", "DocumentId"),
    "code": ("Số, ký hiệu", "Number/notation"),
    "sender": ("Nơi gửi", "Sender"),
    "recipient": ("Nơi nhận", "Recipient"),
    "subject": ("Trích yếu", "Subject"),
    "subject_words": ("Từ trong trích yếu", "Subject words"),
    "from": ("Từ ngày", "From"),
    "to": ("Đến ngày", "To"),
    "any_state": ("Mọi trạng thái", "Any state"),
    "delivery_state": ("Trạng thái chuyển", "Delivery state"),
    "received_at": ("Thời điểm nhận", "Received"),
    "next_page": ("Trang sau", "Next page"),
    "first_page": ("Trang đầu", "First page"),
    "no_documents": ("Không có văn bản nào.", "No documents."),
    "searched_to": ("Không văn bản nào có đúng số, ký hiệu này; đã tìm số, ký hiệu chứa "
                    "chuỗi đã nhập trong các văn bản nhận từ",
                    "No document has exactly this number/notation; documents whose "
                    "number/notation contains it were searched back to"),
    "searched_to_more": ("Bấm Trang sau để tìm tiếp các văn bản cũ hơn, hoặc chọn khoảng "
                         "ngày.", "Use Next page to search older documents, or give dates."),
    "journey": ("Hành trình văn bản", "Document journey"),
    "kind": ("Loại", "Kind"),
    "recipients": ("Nơi nhận và trạng thái", "Recipients and their states"),
    "destination": ("Hệ thống đích", "Destination"),
    "rule": ("Quy tắc định tuyến", "Routing rule"),
    "attempts": ("Số lần gửi", "Attempts"),
    "last_error": ("Lỗi gần nhất", "Last error"),
    "business_state": ("Trạng thái xử lý", "Business status"),
    "attachments": ("Tệp đính kèm", "Attachments"),
    "no_attachments": ("Không có tệp đính kèm.", "No attachments."),
    "attachments_unreadable": ("Không đọc được tệp đính kèm", "Attachments unreadable"),
    "size": ("Dung lượng", "Size"),
    "timeline": ("Dòng thời gian", "Timeline"),
    "related": ("Văn bản liên quan", "Related documents"),
    "refers_to": ("Trả lời cho văn bản", "Refers to"),
    "actor": ("Người/tiến trình", "Actor"),
    "reason": ("Lý do", "Reason"),
    "reason_required": ("Lý do (bắt buộc)", "Reason (required)"),
    "action": ("Thao tác", "Action"),
    "do_resend": ("Gửi lại", "Resend"),
    "do_park": ("Tạm giữ", "Park"),
    "do_cancel": ("Hủy chuyển", "Cancel"),
    "apply": ("Thực hiện", "Apply"),
    "select_all": ("Chọn tất cả", "Select all"),
    "selected": ("Các mục đã chọn", "Selected items"),
    "done_n": ("Đã thực hiện", "Done"),
    "refused_n": ("Bị từ chối", "Refused"),
    "stopped_bulk": ("Đã dừng theo công tắc dừng; chưa xử lý",
                     "Stopped by the stop switch; untouched"),
    "bulk_stop": ("Công tắc dừng thao tác hàng loạt", "Bulk action stop switch"),
    "bulk_stopped": ("ĐANG DỪNG: thao tác hàng loạt bị từ chối",
                     "STOPPED: bulk actions are refused"),
    "bulk_allowed": ("Đang cho phép thao tác hàng loạt", "Bulk actions are allowed"),
    "stop": ("Dừng", "Stop"),
    "resume": ("Cho phép lại", "Allow again"),
    "depth": ("Đang chờ", "Waiting"),
    "oldest": ("Lâu nhất", "Oldest"),
    "failures": ("Lỗi theo mã", "Failures by code"),
    "parked_list": ("Danh sách tạm giữ", "Parked deliveries"),
    "no_parked": ("Không có mục nào bị tạm giữ.", "Nothing is parked."),
    "idle": ("Không đổi từ", "Unchanged for"),
    "readiness": ("Sẵn sàng", "Readiness"),
    "ready": ("Sẵn sàng", "Ready"),
    "not_ready": ("Chưa sẵn sàng", "Not ready"),
    "check": ("Kiểm tra", "Check"),
    "result": ("Kết quả", "Result"),
    "config": ("Cấu hình định tuyến", "Routing configuration"),
    "loaded_at": ("Nạp lúc", "Loaded at"),
    "reload_failures": ("Số lần nạp lại bị từ chối", "Reloads refused"),
    "last_refusal": ("Lần từ chối gần nhất", "Last refusal"),
    "none": ("Không có", "None"),
    "explain": ("Giải thích định tuyến", "Explain routing"),
    "explain_help": ("Tải lên một gói tin edXML để xem mỗi nơi nhận sẽ được chuyển đi đâu "
                     "và vì sao. Gói tin không được gửi đi.",
                     "Upload an edXML packet to see where each recipient would go and why. "
                     "Nothing is sent."),
    "packet": ("Gói tin", "Packet"),
    "forbidden": ("Bạn không có quyền thực hiện việc này.", "You may not do this."),
    "not_found": ("Không tìm thấy.", "Not found."),
    "bad_request": ("Yêu cầu không hợp lệ", "Invalid request"),
    "csrf": ("Biểu mẫu đã hết hạn; hãy tải lại trang và thử lại.",
             "The form has expired; reload the page and try again."),
    "error": ("Lỗi", "Error"),
    "back": ("Quay lại", "Back"),
    "development_keys": ("Đang chấp nhận khóa phát triển công khai (development: true).",
                         "The published development keys are accepted (development: true)."),
    "seconds": ("giây", "s"),
    # Delivery states.
    "st_pending": ("chờ gửi", "pending"),
    "st_queued": ("trong hàng đợi", "queued"),
    "st_delivering": ("đang gửi", "delivering"),
    "st_awaiting": ("chờ hệ thống nhận lấy", "awaiting pickup"),
    "st_delivered": ("đã chuyển", "delivered"),
    "st_refused": ("bị từ chối", "refused"),
    "st_parked": ("tạm giữ", "parked"),
    "st_cancelled": ("đã hủy", "cancelled"),
    "st_withdrawn": ("đã thu hồi", "withdrawn"),
    # Timeline actions.
    "ev_accepted": ("Trục tiếp nhận văn bản", "Accepted by the bus"),
    "ev_routed": ("Định tuyến", "Routed"),
    "ev_attempt": ("Lần gửi", "Delivery attempt"),
    "ev_retry": ("Gửi không thành, sẽ thử lại", "Attempt failed, will retry"),
    "ev_delivered": ("Đã chuyển tới hệ thống nhận", "Delivered"),
    "ev_awaiting": ("Chờ hệ thống nhận lấy", "Waiting for pickup"),
    "ev_acknowledged": ("Hệ thống nhận xác nhận", "Acknowledged by the recipient"),
    "ev_refused": ("Hệ thống nhận từ chối", "Refused by the recipient"),
    "ev_parked": ("Tạm giữ sau nhiều lần lỗi", "Parked after repeated failures"),
    "ev_requeued": ("Vận hành viên cho gửi lại", "Requeued by an operator"),
    "ev_resend": ("Vận hành viên: gửi lại", "Operator: resend"),
    "ev_park": ("Vận hành viên: tạm giữ", "Operator: park"),
    "ev_cancel": ("Vận hành viên: hủy chuyển", "Operator: cancel"),
    "ev_business_status": ("Trạng thái xử lý", "Business status"),
    "ev_recalled": ("Thu hồi", "Recalled"),
    "ev_replaced": ("Thay thế", "Replaced"),
    "ev_withdrawn": ("Đã thu hồi", "Withdrawn"),
}


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT


def translate(key: str, lang: str) -> str:
    entry = _CATALOGUE.get(key)
    if entry is None:
        return key
    return entry[0] if lang == "vi" else entry[1]


def known(key: str) -> bool:
    return key in _CATALOGUE
