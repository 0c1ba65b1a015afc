"""The national-axis adapter keeps the contract every adapter is held to (bus.testing).

The far side is the axis simulator, which verifies every signature with bus.vxp and
honours the signed idempotency key, so "one effect" is counted in what the axis holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.national_axis import NationalAxisAdapter
from adapters.national_axis.simulator import AxisSimulator
from bus.testing import AdapterConformance, ConformanceTarget

SYSTEM = "000.00.00.H37"
SECRET = "conformance-secret"
ENV = "LGSP_TEST_AXIS_CONFORMANCE_SECRET"


@pytest.fixture(scope="module")
def axis_far_side() -> Iterator[AxisSimulator]:
    with AxisSimulator({SYSTEM: SECRET}) as axis:
        yield axis


class TestNationalAxisConformance(AdapterConformance):
    @pytest.fixture
    def conformance_target(self, axis_far_side: AxisSimulator,
                           monkeypatch: pytest.MonkeyPatch) -> Iterator[ConformanceTarget]:
        axis = axis_far_side
        axis.ok()
        monkeypatch.setenv(ENV, SECRET)
        options = {"endpoint": axis.endpoint, "system_id": SYSTEM, "secret_env": ENV,
                   "timeout_s": 2.0}
        yield ConformanceTarget(
            adapter_class=NationalAxisAdapter,
            options=options,
            invalid_options=[
                {"endpoint": axis.endpoint, "system_id": SYSTEM},
                {**options, "endpoint": "ftp://127.0.0.1/vdxp"},
                {**options, "secret_env": "the secret itself"},
                {**options, "timeout_s": 0},
            ],
            make_unavailable=axis.down,
            make_refusing=lambda: axis.fail("Refused", "the axis refuses this packet"),
            restore=axis.ok,
            effects=axis.effects,
            destination="national_axis",
            call_timeout_s=10.0,
        )
        axis.ok()
