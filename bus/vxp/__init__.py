"""The VXP wire protocol of the document axes (edxml.md §7, §7.1), with no I/O.

One module is shared by the national-axis client, its simulator and the bus's own
provincial-axis facade, so that the three can never disagree on a byte: systems that
embed the vendor SDK check nothing we do not also produce, and the real axis accepts
what the simulator accepts. Everything here is a pure function of its arguments (the
clock is a parameter), which is what lets the golden vectors in the tests pin it down.

Client side::

    creds = Credentials("000.00.00.H37", secret)
    request = send_edoc(creds, packet, sender="000.00.12.H37", recipients=["000.00.00.G22"])
    httpx.post(request.url(endpoint), headers=request.headers, content=request.body)
    answer = parse_answer(response.content)     # raises MalformedAnswer

Server side::

    try:
        verified = verify(headers, body, secrets.get)   # raises a VxpError subclass
    except VxpError as exc:
        reply(exc.answer())
    reply(ok_answer(DocId="..."))

Where §7.1 is silent the choices are marked *(assumed)* and are lenient when verifying.
"""


from bus.vxp.answers import (
    Agency,
    Answer,
    MalformedAnswer,
    ReceivedItem,
    SentStatus,
    encode_answer,
    fail_answer,
    ok_answer,
    parse_answer,
)
from bus.vxp.client import (
    Credentials,
    SignedRequest,
    count_receive,
    delete_agency,
    download_edoc,
    get_agencies_list,
    get_agencies_list_qd20,
    get_edoc,
    get_received_edoc_list,
    get_sent_edoc_list,
    get_synchronize_unit,
    register_agency,
    send_edoc,
    sign,
    update_status,
)
from bus.vxp.server import (
    BadSignature,
    ClockSkew,
    HashMismatch,
    HeaderMismatch,
    MalformedRequest,
    Replayed,
    UnknownSystem,
    VerifiedRequest,
    VxpError,
    check_body,
    non_ascii_header,
    verify,
    verify_headers,
)
from bus.vxp.wire import (
    AUTH_ERRORS,
    AXIS_TZ,
    AXIS_ZONE_NAME,
    CONTENT_TYPE_EDOC,
    CONTENT_TYPE_JSON,
    DEFAULT_SKEW_S,
    HEADER_PREFIX,
    IDEMPOTENCY_KEY,
    PROTOCOL_VERSION,
    SERVICE_TYPE,
    USER_AGENT,
    AckStatus,
    ErrorCode,
    MessageType,
    Operation,
    decode_to,
    edoc_body,
    encode_to,
    format_timestamp,
    hash_file,
    hash_header,
    parse_timestamp,
    strip_crlf,
)
from bus.vxp.wire import (
    CRLF as CRLF,
)

__all__ = [
    "AUTH_ERRORS", "AXIS_TZ", "AXIS_ZONE_NAME", "CONTENT_TYPE_EDOC", "CONTENT_TYPE_JSON",
    "DEFAULT_SKEW_S", "HEADER_PREFIX", "IDEMPOTENCY_KEY", "PROTOCOL_VERSION", "SERVICE_TYPE",
    "USER_AGENT",
    "AckStatus", "Agency", "Answer", "BadSignature", "ClockSkew", "Credentials",
    "ErrorCode", "HashMismatch", "HeaderMismatch", "MalformedAnswer", "MalformedRequest",
    "MessageType", "Operation", "ReceivedItem", "Replayed", "SentStatus", "SignedRequest",
    "UnknownSystem", "VerifiedRequest", "VxpError",
    "check_body", "count_receive", "decode_to", "delete_agency", "download_edoc",
    "edoc_body", "encode_answer", "encode_to", "fail_answer", "format_timestamp",
    "get_agencies_list", "get_agencies_list_qd20", "get_edoc", "get_received_edoc_list",
    "get_sent_edoc_list", "get_synchronize_unit", "hash_file", "hash_header",
    "non_ascii_header", "ok_answer", "parse_answer", "parse_timestamp", "register_agency",
    "send_edoc", "sign", "strip_crlf", "update_status", "verify", "verify_headers",
]

