"""The ``hcm_egov`` adapter: HCM Egov Framework 2.0, delivered to and polled over REST."""

from adapters.hcm_egov.adapter import HcmEgovAdapter, HcmEgovConfig
from adapters.hcm_egov.protocol import Credentials, Envelope, parse_envelope

__all__ = ["Credentials", "Envelope", "HcmEgovAdapter", "HcmEgovConfig", "parse_envelope"]
