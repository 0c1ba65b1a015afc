"""``example_file``: each delivered packet becomes one file in a directory.

The smallest adapter that keeps the whole contract, written as a vendor would: it names
the file after the idempotency key, so the same delivery sent twice is one file, and it
creates the file with a hard link, which fails if the name exists, so two workers racing
on one delivery cannot both write it. A missing directory (an unmounted share) is worth
retrying; a packet larger than the destination takes never is.

    destinations:
      drop:
        adapter: example_file
        options: {directory: /srv/edxml-drop, max_bytes: 10485760}
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from bus.adapter import Adapter, Delivery, Receipt, Refuse, Retry

__all__ = ["ExampleFileAdapter", "ExampleFileConfig", "file_name"]


class ExampleFileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str = Field(min_length=1, description="Where packets are written; must exist.")
    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0,
                           description="Larger packets are refused for good.")


def file_name(idempotency_key: str) -> str:
    """The file a delivery becomes: the key hashed, since keys hold ':' and agency codes."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest() + ".edxml"


class ExampleFileAdapter(Adapter[ExampleFileConfig]):
    kind = "example_file"
    Config = ExampleFileConfig
    capabilities: ClassVar[frozenset[str]] = frozenset({"deliver"})

    def check(self) -> str | None:
        directory = Path(self.config.directory)
        if not directory.is_dir():
            return f"{directory} is not a directory (not mounted?)"
        if not os.access(directory, os.W_OK):
            return f"{directory} is not writable"
        return None

    def deliver(self, delivery: Delivery) -> Receipt:
        if len(delivery.payload) > self.config.max_bytes:
            raise Refuse(f"packet of {len(delivery.payload)} bytes exceeds max_bytes "
                         f"({self.config.max_bytes})", code="TooLarge")
        directory = Path(self.config.directory)
        if not directory.is_dir():
            raise Retry(f"{directory} is not a directory (not mounted?)")
        name = file_name(delivery.idempotency_key)
        final = directory / name
        temporary = directory / f".{name}.{uuid.uuid4().hex}.part"
        try:
            with open(temporary, "xb") as handle:
                handle.write(delivery.payload)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, final)
            except FileExistsError:
                return Receipt(reference=name, detail="already written", duplicate=True)
        except OSError as exc:
            raise Retry(f"cannot write {final}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return Receipt(reference=name, detail=f"written to {final}")
