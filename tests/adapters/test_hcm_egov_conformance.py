"""The ``hcm_egov`` adapter against the bus's conformance suite (bus/testing.py), with
the HCM Egov simulator as the far side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.hcm_egov import HcmEgovAdapter
from adapters.hcm_egov.simulator import HcmEgovSimulator
from bus.adapter import Delivery
from bus.testing import AdapterConformance, ConformanceTarget, sample_delivery
from tests.adapters.hcm_egov_support import SO_TTTT, XA_31, options, set_secrets, simulator


@pytest.fixture(scope="module")
def hcm_egov() -> Iterator[HcmEgovSimulator]:
    with simulator() as running:
        yield running


def _commune_delivery() -> Delivery:
    """The suite's default recipient is not a commune, which the platform would refuse."""
    return sample_delivery("hcm_egov", sender=SO_TTTT, recipient=XA_31)


class TestHcmEgovConformance(AdapterConformance):
    @pytest.fixture
    def conformance_target(self, hcm_egov: HcmEgovSimulator,
                           monkeypatch: pytest.MonkeyPatch) -> ConformanceTarget:
        set_secrets(monkeypatch)
        hcm_egov.ok()
        valid = options(hcm_egov)
        return ConformanceTarget(
            adapter_class=HcmEgovAdapter,
            options=valid,
            invalid_options=[
                {**valid, "base_url": "ftp://egov.example"},
                {key: value for key, value in valid.items() if key != "app_name"},
                {**valid, "timeout_s": 0},
                {**valid, "access_key_env": "the secret itself"},
            ],
            make_unavailable=hcm_egov.down,
            make_refusing=lambda: hcm_egov.fail(422),
            restore=hcm_egov.ok,
            effects=hcm_egov.effects_for,
            delivery_factory=_commune_delivery,
            destination="hcm_egov",
            call_timeout_s=10.0,
        )
