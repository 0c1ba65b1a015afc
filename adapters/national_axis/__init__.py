"""The ``national_axis`` adapter: the national document axis (VDXP) over bus.vxp."""

from adapters.national_axis.adapter import (
    NationalAxisAdapter,
    agencies_document,
    write_agencies_yaml,
)
from adapters.national_axis.config import NationalAxisConfig

__all__ = ["NationalAxisAdapter", "NationalAxisConfig", "agencies_document",
           "write_agencies_yaml"]
