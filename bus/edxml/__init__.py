"""edXML (QCVN 102:2016/BTTTT): the typed packet, its hardened reader, writer and builders.

    >>> from bus.edxml import read_packet, packet_bytes
    >>> result = read_packet(open("edoc.edxml", "rb").read())   # raises bus.errors.*
    >>> result.packet.recipients
    ['000.00.12.H37']
    >>> packet_bytes(result.packet)                              # canonical SDK form
"""

from bus.edxml.blob import Blob
from bus.edxml.builder import EdocBuilder, status_for
from bus.edxml.model import (
    NS,
    Attachment,
    Business,
    Code,
    DocumentType,
    Edoc,
    ManifestReference,
    Organization,
    OtherInfo,
    Packet,
    PacketKind,
    PromulgationInfo,
    ResponseFor,
    Signature,
    SignerInfo,
    StaffInfo,
    StatusPacket,
    TraceHeader,
)
from bus.edxml.reader import DEFAULT_LIMITS, Limits, ReadResult, read_packet
from bus.edxml.writer import packet_bytes, write_packet

__all__ = [
    "DEFAULT_LIMITS",
    "NS",
    "Attachment",
    "Blob",
    "Business",
    "Code",
    "DocumentType",
    "Edoc",
    "EdocBuilder",
    "Limits",
    "ManifestReference",
    "Organization",
    "OtherInfo",
    "Packet",
    "PacketKind",
    "PromulgationInfo",
    "ReadResult",
    "ResponseFor",
    "Signature",
    "SignerInfo",
    "StaffInfo",
    "StatusPacket",
    "TraceHeader",
    "packet_bytes",
    "read_packet",
    "status_for",
    "write_packet",
]
