"""The directory as the axis SDK reads it, and the changes systems may ask of it.

* getAgenciesList, getAgenciesListQD20 and getSynchronizeUnit are views of the directory
  (config/directory.yaml). Every field is a string, an integer or a boolean, never
  ``null``: one ``null`` anywhere makes the SDK drop the whole list (edxml.md §7.2). The
  directory keeps no e-mail, so ``mail`` is "".
* getSynchronizeUnit: ``centerCode`` is the bus's own code (the hub the unit is reached
  through); a code replaced by a successor in effect today is ``deleted: true``;
  ``modifyDate`` is when the directory file last changed, or the day a succession took
  effect if later; ``version`` is that moment in epoch seconds. An optional signed
  ``since`` header (``yyyy-MM-dd``, ``yyyy-MM-dd HH:mm:ss`` in the bus's zone, ISO 8601
  with offset, or the SDK's timestamp form) keeps only units modified at or after it.
* registerAgency / deleteAgency record a request an administrator decides
  (:mod:`bus.directory.requests`); nothing changes until the directory file does.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, time
from typing import Any, Final

from bus import errors, vxp
from bus.api.vxp.facade import Action, Facade
from bus.api.vxp_systems import VxpSystem
from bus.directory import Directory
from bus.directory import requests as agency_requests
from bus.edxml.identifiers import standard_form

__all__ = ["OPERATIONS"]

_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*")
_MAIL: Final = re.compile(r"[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NAME_CHARS: Final = 200


def agencies(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
    data = [vxp.Agency(code=a.code, name=a.name, id=a.code, pid=a.parent or "").to_json()
            for a in sorted(f.directory(), key=lambda a: a.code)]
    return vxp.ok_answer(f"{len(data)} agencies", data=data)


def agencies_qd20(f: Facade, entry: VxpSystem,
                  verified: vxp.VerifiedRequest) -> dict[str, Any]:
    """``code102`` *(assumed meaning)*: the identifier again when it has the QCVN 102:2016
    form, else ""; the directory keeps one identifier per agency."""
    data = [{"code": a.code, "id": a.code, "mail": "", "name": a.name,
             "code102": a.code if standard_form(a.code) else ""}
            for a in sorted(f.directory(), key=lambda a: a.code)]
    return vxp.ok_answer(f"{len(data)} agencies", data=data)


def _since(f: Facade, verified: vxp.VerifiedRequest) -> float | None:
    text = f.param(verified, "since", required=False)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = vxp.parse_timestamp(text, f.zone)
        except ValueError:
            raise vxp.MalformedRequest(
                f"since {text!r} is not yyyy-MM-dd, yyyy-MM-dd HH:mm:ss or ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=f.zone)
    return moment.timestamp()


def _directory_changed(f: Facade) -> float:
    config = f.bus.reloader.current()
    if len(config.fingerprint) >= 4:
        return max(config.fingerprint[2::2]) / 1e9
    return config.loaded_at


def synchronize_unit(f: Facade, entry: VxpSystem,
                     verified: vxp.VerifiedRequest) -> dict[str, Any]:
    since = _since(f, verified)
    directory = f.directory()
    changed = _directory_changed(f)
    today = datetime.now(f.zone).date()
    center = str(getattr(f.bus.settings, "bus_organ_id", ""))
    rows: list[dict[str, Any]] = []

    def unit(code: str, name: str, parent: str | None) -> None:
        successor = directory.successors.get(code)
        deleted = successor is not None and successor.effective <= today
        modified = changed
        if deleted and successor is not None:
            took_effect = datetime.combine(successor.effective, time(), f.zone).timestamp()
            modified = max(modified, took_effect)
        if since is not None and modified < since:
            return
        rows.append({"id": code, "pid": parent or "", "code": code, "name": name,
                     "mail": "", "centerCode": center, "modifyDate": f.time(modified),
                     "version": int(modified), "deleted": deleted, "isAgency": True})

    for agency in sorted(directory, key=lambda a: a.code):
        unit(agency.code, agency.name, agency.parent)
    for old in sorted(set(directory.successors) - set(directory.agencies)):
        step = directory.successors[old]
        unit(old, f"replaced by {', '.join(step.new)} on {step.effective.isoformat()}", None)
    return vxp.ok_answer(f"{len(rows)} unit(s)", data=rows)


def _field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise errors.InvalidRequest(f"registerAgency: {key} must be a string")
    return str(value).strip()


def _hosted_by(directory: Directory, entry: VxpSystem) -> str:
    codes = sorted(directory.hosted_by(entry.system))
    return ", ".join(codes[:10]) + (" …" if len(codes) > 10 else "") if codes else "none"


def register_agency(f: Facade, entry: VxpSystem,
                    verified: vxp.VerifiedRequest) -> dict[str, Any]:
    try:
        body = json.loads(verified.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise errors.InvalidRequest("registerAgency: the body must be the agency as a JSON "
                                    "object {\"id\", \"pid\", \"code\", \"name\", \"mail\"}")
    code, name, mail, pid = (_field(body, k) for k in ("code", "name", "mail", "pid"))
    if not code or len(code) > 35 or not _IDENTIFIER.fullmatch(code):
        raise errors.InvalidRequest(f"registerAgency: code {code!r} is not an organisation "
                                    "identifier (dot-separated letters and digits, at most 35 "
                                    "characters, e.g. 000.00.40.H37)")
    if not name or len(name) > _NAME_CHARS:
        raise errors.InvalidRequest(f"registerAgency: name is required (at most {_NAME_CHARS} "
                                    "characters)")
    if mail and (len(mail) > 254 or not _MAIL.fullmatch(mail)):
        raise errors.InvalidRequest(f"registerAgency: mail {mail!r} is not an e-mail address")
    directory = f.directory()
    if pid and not directory.hosts(entry.system, pid):
        raise errors.SenderMismatch(
            f"registerAgency: pid {pid!r} is not an agency of system {entry.system} (it hosts "
            f"{_hosted_by(directory, entry)}): a system registers agencies under its own")
    host = directory.host_of(code)
    if host == entry.system:
        return vxp.ok_answer(f"{code} is already in the directory under this system")
    if host is not None:
        raise errors.InvalidRequest(f"registerAgency: {code} is already in the directory, "
                                    "hosted by another system; ask the bus's administrator")
    request, existing = agency_requests.submit(
        f.store.engine, action="register", code=code, name=name, parent=pid or None,
        mail=mail or None, system=entry.system, requested_by=entry.actor)
    again = " (already requested)" if existing else ""
    return vxp.ok_answer(
        f"request #{request.id} to register {code} recorded{again}: an administrator of the "
        "provincial bus must approve it before the agency can send or receive")


def delete_agency(f: Facade, entry: VxpSystem,
                  verified: vxp.VerifiedRequest) -> dict[str, Any]:
    code = f.param(verified, "code") or ""
    directory = f.directory()
    host = directory.host_of(code)
    if host is None:
        withdrawn = agency_requests.withdraw(f.store.engine, code=code, system=entry.system,
                                             by=entry.actor)
        if withdrawn is not None:
            return vxp.ok_answer(f"request #{withdrawn.id} to register {code} withdrawn")
        raise errors.NotFound(f"deleteAgency: {code!r} is not in the directory")
    if host != entry.system:
        raise errors.SenderMismatch(f"deleteAgency: {code} is hosted by another system; "
                                    f"system {entry.system} hosts {_hosted_by(directory, entry)}")
    agency = directory.agencies[code]
    request, existing = agency_requests.submit(
        f.store.engine, action="delete", code=code, name=agency.name, parent=agency.parent,
        system=entry.system, requested_by=entry.actor)
    again = " (already requested)" if existing else ""
    return vxp.ok_answer(
        f"request #{request.id} to remove {code} recorded{again}: an administrator of the "
        "provincial bus must approve it; until then the agency stays in the directory")


OPERATIONS: Final[dict[str, Action]] = {
    vxp.Operation.GET_AGENCIES_LIST: agencies,
    vxp.Operation.GET_AGENCIES_LIST_QD20: agencies_qd20,
    vxp.Operation.GET_SYNCHRONIZE_UNIT: synchronize_unit,
    vxp.Operation.REGISTER_AGENCY: register_agency,
    vxp.Operation.DELETE_AGENCY: delete_agency,
}

