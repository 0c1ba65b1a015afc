"""lgsp-bus: a provincial integration bus for edXML (QCVN 102:2016) document exchange."""

__version__ = "0.1.0"
