"""The httpx client shared by the adapters that speak plain HTTP, and how it is built.

The client is made on first use, never in a constructor, because the bus builds adapters
merely to validate routes. It ignores the environment's proxy variables
(``trust_env=False``), since the bus talks to destinations directly, and it does not
follow redirects, since a 3xx is an answer for the adapter to decide on, not a reason to
send a packet somewhere routes.yaml does not name.
"""

from __future__ import annotations

import httpx

__all__ = ["HttpClientLifecycle", "new_client"]


def new_client(timeout_s: float, *, base_url: str = "") -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout_s),
                        follow_redirects=False, trust_env=False)


class HttpClientLifecycle:
    """Mixin (listed before ``Adapter``) whose ``open`` and ``close`` may be called any
    number of times, in any order, as the bus and its conformance suite do."""

    _client: httpx.Client | None = None

    def _new_client(self) -> httpx.Client:
        """The adapter's client, built with :func:`new_client` from its configuration."""
        raise NotImplementedError

    def open(self) -> None:
        if self._client is None:
            self._client = self._new_client()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
