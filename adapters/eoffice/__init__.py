"""The ``eoffice`` adapter: the older eOffice as a SOAP 1.1 web service (``eoffice.wsdl``)."""

from adapters.eoffice.adapter import EofficeAdapter, EofficeConfig

__all__ = ["EofficeAdapter", "EofficeConfig"]
