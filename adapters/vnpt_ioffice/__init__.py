"""VNPT-iOffice, reached through the bus's provincial-axis facade (``/vxp``).

iOffice embeds the national axis's SDK and can speak nothing else, so it is not called:
it calls the bus. Outbound packets wait in its mailbox until it collects and
acknowledges them; see README.md in this folder.
"""

from adapters.vnpt_ioffice.adapter import VnptIofficeAdapter, VnptIofficeConfig

__all__ = ["VnptIofficeAdapter", "VnptIofficeConfig"]
