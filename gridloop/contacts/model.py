"""A reporter's contact and its reference. Pure."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

# Contact references are derived from the case id: a retried report, a rebuild of the
# projection from old events and the migration of those events all name the same contact.
CONTACT_NAMESPACE = uuid.UUID("6f1b0c52-8a0e-4c57-9d8e-2b7c1e4f9a30")
PREFIX = "ct_"


def contact_id(case_id: str) -> str:
    """The opaque reference a case's events carry instead of the reporter's contact."""
    return PREFIX + uuid.uuid5(CONTACT_NAMESPACE, case_id).hex


class Contact(BaseModel):
    """How to reach a reporter: personal data, never written to Kafka or in plaintext to
    the database."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str | None = None
    phone: str | None = None
    address: str | None = None  # where the reporter lives, not where the problem is
    wechat: str | None = None  # a WeChat id (微信号)
    email: str | None = None
    # The reporter asked not to be told of the case's progress (at the report, or later
    # with their follow token): kept with the contact, erased with it.
    opted_out: bool = False

    def empty(self) -> bool:
        return not any((self.name, self.phone, self.address, self.wechat, self.email))

    def fields(self) -> list[str]:
        """The names of the fields it holds (what an audit record may say)."""
        return [k for k, v in self.model_dump().items() if v]
