"""Options of an ``adapter: national_axis`` destination in routes.yaml.

Unknown options are refused so that a misspelt key (``secret`` instead of
``secret_env``) is reported when routes load rather than silently ignored — and so that
nobody can put the secret itself in the file: only the name of the variable holding it.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bus import vxp

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class NationalAxisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="Base URL; operations are POSTed to <endpoint>/<op>.")
    system_id: str = Field(min_length=1, max_length=64,
                           description="This province's systemId on the axis (its code).")
    secret_env: str = Field(description="Name of the environment variable holding the secret.")
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    poll_interval_s: float = Field(default=60.0, gt=0, le=86400)
    clock_skew_s: float = Field(default=vxp.DEFAULT_SKEW_S, gt=0, le=86400,
                                description="Largest clock difference check() tolerates.")
    max_items_per_poll: int = Field(default=200, ge=1, le=10000)
    timezone: str = Field(
        default=vxp.AXIS_ZONE_NAME,
        description="IANA zone the axis reads XroadVnpt-timestamp in (it carries no zone "
                    "marker); never the bus host's zone.")
    send_idempotency_key: bool = Field(
        default=True, description="Sign and send XroadVnpt-idempotency-key (assumed header).")
    auth_error_codes: list[str] = Field(
        default_factory=list, description="Extra axis ErrorCodes meaning bad credentials.")
    refuse_error_codes: list[str] = Field(
        default_factory=list, description="Extra axis ErrorCodes meaning a packet is refused.")

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("system_id")
    @classmethod
    def _ascii_id(cls, value: str) -> str:
        if not value.isascii() or not value.isprintable() or value != value.strip():
            raise ValueError("must be printable ASCII without surrounding spaces")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Asia/Ho_Chi_Minh") from None
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _),"
                             " not the secret itself")
        return value
