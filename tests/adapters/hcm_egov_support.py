"""What the HCM Egov tests share: credentials, packets, an adapter aimed at a simulator."""

from __future__ import annotations

from typing import Any, Final

import pytest

from adapters.hcm_egov import HcmEgovAdapter
from adapters.hcm_egov.simulator import HcmEgovSimulator
from bus.adapter import Delivery
from bus.edxml import Edoc, EdocBuilder, packet_bytes

ACCESS_ENV: Final = "TEST_HCM_EGOV_ACCESS"
SECRET_ENV: Final = "TEST_HCM_EGOV_SECRET"
ACCESS: Final = "ak-5f1c0e"
SECRET: Final = "sk-Bí-mật-9d2"  # non-ASCII on purpose: the header is base64 of UTF-8 JSON
APP, PARTNER, PARTNER_CUS = "lgsp-langson", "LGSP-H37", "UBND-H37"

SO_TTTT: Final = "000.00.12.H37"  # eOffice
XA_31: Final = "000.00.31.H37"  # a commune on HCM Egov
XA_32: Final = "000.00.32.H37"


def simulator(**overrides: Any) -> HcmEgovSimulator:
    options: dict[str, Any] = {"app_name": APP, "access_key": ACCESS, "secret_key": SECRET,
                               "partner_code": PARTNER, "partner_code_cus": PARTNER_CUS,
                               "hosted": {XA_31, XA_32}}
    options.update(overrides)
    return HcmEgovSimulator(**options)


def options(sim: HcmEgovSimulator, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"base_url": sim.base_url, "app_name": APP,
                              "partner_code": PARTNER, "partner_code_cus": PARTNER_CUS,
                              "access_key_env": ACCESS_ENV, "secret_key_env": SECRET_ENV,
                              "timeout_s": 2.0, "max_retry_after_s": 60.0}
    values.update(overrides)
    return values


def make_adapter(sim: HcmEgovSimulator, **overrides: Any) -> HcmEgovAdapter:
    adapter = HcmEgovAdapter.from_options("hcm_egov", options(sim, **overrides))
    assert isinstance(adapter, HcmEgovAdapter)
    return adapter


def set_secrets(monkeypatch: pytest.MonkeyPatch, *, access: str = ACCESS,
                secret: str = SECRET) -> None:
    monkeypatch.setenv(ACCESS_ENV, access)
    monkeypatch.setenv(SECRET_ENV, secret)


def edoc(sender: str = SO_TTTT, *to: str, subject: str = "Kế hoạch chuyển đổi số cấp xã",
         document_id: str | None = None) -> Edoc:
    builder = (EdocBuilder(sender).to(*(to or (XA_31,))).subject(subject, "Nội dung.")
               .signer("Nguyễn Văn An", "Giám đốc").code("15", "KH-STTTT"))
    if document_id:
        builder.document_id(document_id)
    return builder.build()


def delivery(payload: bytes, *, kind: str = "edoc", key: str = "doc-1:000.00.31.H37:hcm_egov",
             recipient: str = XA_31, document_id: str = "d-1") -> Delivery:
    return Delivery(payload=payload, idempotency_key=key, document_id=document_id, kind=kind,
                    sender=SO_TTTT, recipient=recipient, destination="hcm_egov",
                    headers={"X-LGSP-Delivery": "dl-1", "X-LGSP-Attempt": "1"})


def edoc_delivery(key: str = "doc-1:000.00.31.H37:hcm_egov", **kwargs: Any) -> Delivery:
    return delivery(packet_bytes(edoc(**kwargs)), key=key)
