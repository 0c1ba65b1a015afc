"""The built-in ``http`` adapter: one POST of the edXML packet per delivery."""

from adapters.http.adapter import HttpAdapter, HttpConfig, retry_after_s

__all__ = ["HttpAdapter", "HttpConfig", "retry_after_s"]
