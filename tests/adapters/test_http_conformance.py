"""The built-in ``http`` adapter keeps the contract every vendor's adapter is held to.

The far side is :class:`tests.http_sink.HttpSink`, a destination that honours
``Idempotency-Key`` the way the adapter's README asks a real system to, so "one effect"
is counted where a province would count it: in what the destination stored.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.http import HttpAdapter
from bus.testing import AdapterConformance, ConformanceTarget
from tests.http_sink import HttpSink


@pytest.fixture(scope="module")
def http_far_side() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink


class TestHttpConformance(AdapterConformance):
    @pytest.fixture
    def conformance_target(self, http_far_side: HttpSink) -> Iterator[ConformanceTarget]:
        sink = http_far_side
        sink.ok()
        yield ConformanceTarget(
            adapter_class=HttpAdapter,
            options={"url": sink.url("/edxml"), "timeout_s": 2.0},
            invalid_options=[
                {"timeout_s": 2.0},
                {"url": "ftp://127.0.0.1/edxml"},
                {"url": sink.url("/edxml"), "timeout_s": 0},
                {"url": sink.url("/edxml"), "headers": {"X-Bad": "a\r\nInjected: 1"}},
            ],
            make_unavailable=sink.down,
            make_refusing=lambda: sink.fail(422),
            restore=sink.ok,
            effects=lambda key: 1 if key in sink.effect_keys() else 0,
            destination="archive",
            call_timeout_s=10.0,
        )
        sink.ok()
