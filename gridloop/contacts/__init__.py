"""Reporters' contacts (联系方式), kept apart from the events: the log carries a reference
(`contact_id`), the contact store holds the name, phone, address and WeChat id, each
contact sealed under a data key of its own, the data keys wrapped by the master key from
configuration. Erasing a contact destroys its data key (crypto-shredding). docs/personal-data.md.
"""

from gridloop.contacts.keys import ContactKeyError, MasterKeys
from gridloop.contacts.model import Contact, contact_id

__all__ = ["Contact", "ContactKeyError", "MasterKeys", "contact_id"]
