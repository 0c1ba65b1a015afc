"""The outbound half of VNPT-iOffice: put the packet in the system's mailbox, nothing more.

iOffice only knows the national axis's API, in which a receiving system *polls*: it
lists its pending items, fetches each and acknowledges it. The bus therefore never
connects to iOffice. A delivery to this destination is "handed over" the moment it is
placed in the mailbox: the worker records it ``awaiting``, the facade
(:mod:`bus.api.vxp`) lists it to the systemId registered for the directory system, and
the delivery becomes ``delivered`` (or ``refused``) only when iOffice answers
``updateStatus``. Retries, parking and idempotency therefore cost nothing here: the
mailbox *is* the queue, and a second attempt of the same delivery is the same row.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from bus.adapter import Adapter, Delivery, Receipt

__all__ = ["VnptIofficeAdapter", "VnptIofficeConfig"]

DELIVERY_HEADER: Final = "X-LGSP-Delivery"


class VnptIofficeConfig(BaseModel):
    """Options of an ``adapter: vnpt_ioffice`` destination in routes.yaml."""

    model_config = ConfigDict(extra="forbid")

    system_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
        description="the systemId iOffice signs with at the facade "
                    "(config/vxp_systems.yaml); recorded with each delivery so an "
                    "operator knows which mailbox holds it")


class VnptIofficeAdapter(Adapter[VnptIofficeConfig]):
    """Answers every delivery with "awaiting pickup"; the facade does the rest."""

    kind = "vnpt_ioffice"
    Config = VnptIofficeConfig
    # "mailbox", not "deliver": deliver() never contacts iOffice (bus.testing's rule).
    capabilities = frozenset({"mailbox"})

    def deliver(self, delivery: Delivery) -> Receipt:
        """The reference is the docId iOffice will see in getReceivedEdocList.

        That id is the delivery's own, which the worker passes in the headers; without
        it (a test harness) the idempotency key is just as stable across attempts.
        """
        doc_id = delivery.headers.get(DELIVERY_HEADER) or delivery.idempotency_key
        return Receipt(reference=doc_id[:255], awaiting_pickup=True,
                       detail=f"in the VXP mailbox of systemId {self.config.system_id}")
