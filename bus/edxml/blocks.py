"""The blocks of a MessageHeader, each read into the model and checked in one loop.

lxml builds a new proxy object and a new ``{namespace}name`` string for every element
and every ``.tag`` read, which is most of what reading a packet costs in Python. So each
block below visits its children once (``children`` builds the list of them in C, which
is cheaper than an iterator), reads ``.tag`` and ``.text`` once per child, compares tags
with module constants, and applies its rules to the values as it goes, in document
order, so findings come out in the order the sender wrote them.

Values are read with ``.text``: the reader's parser drops comments and processing
instructions, which joins text they split, and ``check_edoc`` does the same to a copy
of any tree that has them.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from bus.edxml.dates import day_first_text, to_date
from bus.edxml.findings import (
    CODE_NOTATION,
    CODE_NUMBER,
    EMAIL,
    FULL_NAME,
    NOTICE_FIELD_EMPTY,
    ORGAN_ADD,
    ORGAN_NAME,
    PLACE,
    TYPER_NOTATION,
    Findings,
    Q,
    check_length,
    children,
    schema_error,
)
from bus.edxml.identifiers import check_identifier, standard_form
from bus.edxml.model import (
    Code,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
)

NOTICE_DUPLICATE_RECIPIENT: Final = "DuplicateRecipient"

_ORGAN_ID: Final = Q + "OrganId"
_ORGANIZATION_IN_CHARGE: Final = Q + "OrganizationInCharge"
_ORGAN_NAME: Final = Q + "OrganName"
_ORGAN_ADD: Final = Q + "OrganAdd"
_EMAIL: Final = Q + "Email"
_TELEPHONE: Final = Q + "Telephone"
_FAX: Final = Q + "Fax"
_WEBSITE: Final = Q + "Website"
_CODE: Final = Q + "Code"
_CODE_NUMBER: Final = Q + "CodeNumber"
_CODE_NOTATION: Final = Q + "CodeNotation"
_PLACE: Final = Q + "Place"
_PROMULGATION_DATE: Final = Q + "PromulgationDate"
_TYPE: Final = Q + "Type"
_TYPE_DETAIL: Final = Q + "TypeDetail"
_TYPE_NAME: Final = Q + "TypeName"
_COMPETENCE: Final = Q + "Competence"
_POSITION: Final = Q + "Position"
_FULL_NAME: Final = Q + "FullName"
_PRIORITY: Final = Q + "Priority"
_SPHERE: Final = Q + "SphereOfPromulgation"
_TYPER_NOTATION: Final = Q + "TyperNotation"
_PROMULGATION_AMOUNT: Final = Q + "PromulgationAmount"
_PAGE_AMOUNT: Final = Q + "PageAmount"
_DIRECTION: Final = Q + "Direction"
_APPENDIXES: Final = Q + "Appendixes"
_APPENDIX: Final = Q + "Appendix"
_DOCUMENT_ID: Final = Q + "DocumentId"
_DEPARTMENT: Final = Q + "Department"
_DEPARTMENT_ID: Final = Q + "DepartmentId"
_STAFF: Final = Q + "Staff"
_STAFF_ID: Final = Q + "StaffId"
_MOBILE: Final = Q + "Mobile"


def to_int(text: str | None) -> int | None:
    """An XSD-checked number, or None for an absent or empty element."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        # Only blank text gets here once the XSD has passed: int() skips whitespace.
        if text.strip():
            raise
        return None


# ---------------------------------------------------------------- MessageHeader blocks


def sender(block: etree._Element, findings: Findings, role: str = "From") -> Organization:
    """From (or, as ``role``, To): OrganId required and well formed; name, address and
    e-mail lengths."""
    organ_id = in_charge = name = address = email = telephone = fax = website = None
    for leaf in children(block):
        tag = leaf.tag
        text = leaf.text or ""
        if tag == _ORGAN_ID:
            organ_id = (
                text if standard_form(text) is not None
                else check_identifier(leaf, role + "/OrganId", text, findings)
            )
        elif tag == _ORGAN_NAME:
            name = text
            if len(text) > ORGAN_NAME.low:
                check_length(leaf, text, ORGAN_NAME, findings)
        elif tag == _EMAIL:
            email = text
            if len(text) > EMAIL.low:
                check_length(leaf, text, EMAIL, findings)
        elif tag == _ORGAN_ADD:
            address = text
            if len(text) > ORGAN_ADD.low:
                check_length(leaf, text, ORGAN_ADD, findings)
        elif tag == _TELEPHONE:
            telephone = text
        elif tag == _FAX:
            fax = text
        elif tag == _WEBSITE:
            website = text
        elif tag == _ORGANIZATION_IN_CHARGE:
            in_charge = text
    if organ_id is None:
        raise schema_error(
            block, f"{role} has no OrganId; expected the organisation's identifier."
        )
    return Organization(organ_id, in_charge, name, address, email, telephone, fax, website)


def recipient(block: etree._Element, findings: Findings) -> Organization:
    """A To block; naming the same organisation twice is one recipient, with a notice."""
    organization = sender(block, findings, "To")
    organ_id = organization.organ_id
    if organ_id in findings.recipients:
        findings.notice(
            NOTICE_DUPLICATE_RECIPIENT,
            block,
            f"To {organ_id!r} appears more than once; it is one recipient.",
            identifier=organ_id,
        )
    findings.recipients.add(organ_id)
    return organization


def code(block: etree._Element, findings: Findings) -> Code:
    number = notation = ""
    for leaf in children(block):
        tag = leaf.tag
        text = leaf.text or ""
        if tag == _CODE_NUMBER:
            number = text
            if len(text) > CODE_NUMBER.low:
                check_length(leaf, text, CODE_NUMBER, findings)
        elif tag == _CODE_NOTATION:
            notation = text
            if len(text) > CODE_NOTATION.low:
                check_length(leaf, text, CODE_NOTATION, findings)
    return Code(number, notation)


def promulgation_info(block: etree._Element, findings: Findings) -> PromulgationInfo:
    place = ""
    date_el = None
    date_text = ""
    for leaf in children(block):
        tag = leaf.tag
        text = leaf.text or ""
        if tag == _PROMULGATION_DATE:
            date_el, date_text = leaf, text
        elif tag == _PLACE:
            place = text
            if len(text) > PLACE.low:
                check_length(leaf, text, PLACE, findings)
    if date_el is None:
        raise schema_error(block, "PromulgationInfo has no PromulgationDate; expected yyyy/MM/dd.")
    promulgated = to_date(date_el, "PromulgationDate", date_text, required=True,
                          findings=findings)
    assert promulgated is not None
    return PromulgationInfo(place, promulgated)


def document_type(block: etree._Element, findings: Findings) -> DocumentType:
    type_ = detail = None
    name = ""
    for leaf in children(block):
        tag = leaf.tag
        if tag == _TYPE:
            type_ = leaf.text
        elif tag == _TYPE_NAME:
            name = leaf.text or ""
        elif tag == _TYPE_DETAIL:
            detail = leaf.text
    return DocumentType(
        (to_int(type_) or 0) if type_ else 0, name, to_int(detail) if detail else None
    )


def signer_info(block: etree._Element, findings: Findings) -> SignerInfo:
    full_name = ""
    competence = position = None
    for leaf in children(block):
        tag = leaf.tag
        text = leaf.text or ""
        if tag == _FULL_NAME:
            full_name = text
            if len(text) > FULL_NAME.low:
                check_length(leaf, text, FULL_NAME, findings)
        elif tag == _POSITION:
            position = text
        elif tag == _COMPETENCE:
            competence = text
    return SignerInfo(full_name, competence, position)


def other_info(block: etree._Element, findings: Findings) -> OtherInfo:
    priority = sphere = typer = amount = pages = direction = None
    appendixes: list[str] | None = None
    for leaf in children(block):
        tag = leaf.tag
        if tag == _PRIORITY:
            priority = leaf.text
        elif tag == _TYPER_NOTATION:
            typer = leaf.text or ""
            if len(typer) > TYPER_NOTATION.low:
                check_length(leaf, typer, TYPER_NOTATION, findings)
        elif tag == _SPHERE:
            sphere = leaf.text or ""
        elif tag == _PROMULGATION_AMOUNT:
            amount = leaf.text
        elif tag == _PAGE_AMOUNT:
            pages = leaf.text
        elif tag == _DIRECTION:
            direction = leaf.text or ""
        elif tag == _APPENDIXES:
            appendixes = [item.text or "" for item in children(leaf) if item.tag == _APPENDIX]
    flag = direction.strip() if direction is not None else ""
    # Most of these are absent: to_int is only called for text.
    return OtherInfo(
        to_int(priority) if priority else None, sphere, typer,
        to_int(amount) if amount else None, to_int(pages) if pages else None,
        flag in ("true", "1") if flag else None, appendixes,
    )


def staff_info(block: etree._Element, findings: Findings | None) -> StaffInfo:
    """StaffInfo; its e-mail length is checked only where ``findings`` is given.

    The status MessageHeader's StaffInfo is checked; the one inside Bussiness never
    was, and a notice appearing there now would change what senders see.
    """
    department = department_id = staff = staff_id = email = mobile = None
    for leaf in children(block):
        tag = leaf.tag
        text = leaf.text or ""
        if tag == _STAFF:
            staff = text
        elif tag == _DEPARTMENT:
            department = text
        elif tag == _EMAIL:
            email = text
            if findings is not None and len(text) > EMAIL.low:
                check_length(leaf, text, EMAIL, findings)
        elif tag == _MOBILE:
            mobile = text
        elif tag == _DEPARTMENT_ID:
            department_id = text
        elif tag == _STAFF_ID:
            staff_id = text
    return StaffInfo(department, department_id, staff, staff_id, email, mobile)


def response_for(block: etree._Element, findings: Findings, status: bool = False) -> ResponseFor:
    """A pointer to an earlier document.

    In an edoc every part is optional and may be empty (the SDK sends ``<ResponseFor/>``).
    A status travels to the OrganId named here, so for a status it is required, and a
    status that names no document by Code or DocumentId gets a notice.
    """
    organ_id = code_ = promulgated = document_id = None
    for leaf in children(block):
        tag = leaf.tag
        text = leaf.text or ""
        if tag == _ORGAN_ID:
            organ_id = check_identifier(
                leaf, "ResponseFor/OrganId", text, findings, required=status
            )
        elif tag == _CODE:
            code_ = text
        elif tag == _PROMULGATION_DATE:
            found = to_date(leaf, "ResponseFor/PromulgationDate", text, required=False,
                            findings=findings)
            # The model keeps the text: a day-first date as receivers get it.
            promulgated = (day_first_text(text) if found is not None else None) or text
        elif tag == _DOCUMENT_ID:
            document_id = text
    if status:
        if organ_id is None:
            raise schema_error(
                block,
                "ResponseFor has no OrganId; expected the identifier of the organisation the "
                "status is addressed to.",
            )
        if not (code_ and code_.strip()) and not (document_id and document_id.strip()):
            findings.notice(
                NOTICE_FIELD_EMPTY,
                block,
                "ResponseFor has neither Code nor DocumentId; the receiver may not find "
                "which document this status is about.",
                field="ResponseFor",
            )
    return ResponseFor(organ_id, code_, promulgated, document_id)


def status_response_for(block: etree._Element, findings: Findings) -> ResponseFor:
    return response_for(block, findings, status=True)
