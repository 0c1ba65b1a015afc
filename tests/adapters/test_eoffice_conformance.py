"""The eoffice adapter held to the contract of bus.adapter by bus.testing's suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.eoffice import EofficeAdapter
from adapters.eoffice.simulator import EofficeSimulator
from bus.testing import AdapterConformance, ConformanceTarget

PASSWORD_ENV = "LGSP_TEST_EOFFICE_CONFORMANCE_PASSWORD"
PASSWORD = "conformance-password"


@pytest.fixture(scope="module")
def eoffice() -> Iterator[EofficeSimulator]:
    with EofficeSimulator(username="lgsp", password=PASSWORD) as simulator:
        yield simulator


class TestEofficeConformance(AdapterConformance):
    @pytest.fixture
    def conformance_target(self, eoffice: EofficeSimulator,
                           monkeypatch: pytest.MonkeyPatch) -> ConformanceTarget:
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
        eoffice.ok()
        return ConformanceTarget(
            adapter_class=EofficeAdapter,
            options={"endpoint": eoffice.url, "username": "lgsp",
                     "password_env": PASSWORD_ENV, "timeout_s": 2},
            invalid_options=[
                {"timeout_s": 2},                                   # no endpoint, no wsdl
                {"endpoint": "ftp://eoffice.example/soap"},
                {"endpoint": eoffice.url, "username": "lgsp"},     # no password_env
                {"endpoint": eoffice.url, "timeout_s": -1},
            ],
            make_unavailable=eoffice.down,
            make_refusing=lambda: eoffice.fault("InvalidDocument"),
            restore=eoffice.ok,
            effects=lambda key: sum(1 for item in eoffice.received if item.key == key),
            call_timeout_s=10,
        )
