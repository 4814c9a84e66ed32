"""The master keys a service or command is configured with (`Settings`)."""

from __future__ import annotations

from pathlib import Path

from gridloop.config import Settings
from gridloop.contacts.keys import MasterKeys


def keys_file(settings: Settings) -> Path:
    """GRIDLOOP_CONTACT_KEYS_FILE, else `<data dir>.contact-keys` beside the data directory."""
    data = settings.data_dir.absolute()
    return settings.contact_keys_file or data.with_name(data.name + ".contact-keys")


def contact_keys(settings: Settings) -> MasterKeys:
    """The configured master keys of reporters' contacts."""
    return MasterKeys.configured(settings.contact_keys, keys_file(settings))
