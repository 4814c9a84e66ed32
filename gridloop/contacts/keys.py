"""Envelope encryption of contacts: each contact sealed with AES-256-GCM under a data key of
its own, each data key wrapped (AES-256-GCM again) by the master key.

The master keys come from configuration — `GRIDLOOP_CONTACT_KEYS` (base64, comma
separated) or `GRIDLOOP_CONTACT_KEYS_FILE` (one a line) — never from the database: the
first is current (it wraps new data keys), the others are previous ones still able to
unwrap until `gridloop contacts rotate` re-wrapped every data key under the current one.
A wrapped key names its master key by fingerprint (never the key).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class ContactKeyError(Exception):
    """A contact key cannot be used: unknown master key, wrong key or tampered data."""


def fingerprint(master: bytes) -> str:
    """Names a master key without revealing it."""
    return hashlib.sha256(b"gridloop-contact-master\n" + master).hexdigest()[:16]


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise ContactKeyError("the sealed value does not open under this key") from None


def seal(data_key: bytes, plaintext: bytes, contact: str) -> bytes:
    """A contact sealed under its data key; bound to its id (moved elsewhere, it won't open)."""
    return _seal(data_key, plaintext, contact.encode())


def open_sealed(data_key: bytes, sealed: bytes, contact: str) -> bytes:
    return _open(data_key, sealed, contact.encode())


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * KEY_BYTES)


def parse_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ContactKeyError("a contact master key is 32 bytes in base64") from None
    if len(key) != KEY_BYTES:
        raise ContactKeyError(f"a contact master key is {KEY_BYTES} bytes, not {len(key)}")
    return key


def new_master_key() -> str:
    """A fresh master key, in base64 (what `gridloop contacts new-key` prints)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _make_key_file(path: Path) -> None:
    """A key file with one new key, owner-only, appearing whole: written aside, then linked
    in (two processes starting together keep the first one's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(new_master_key() + "\n")
    try:
        os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        aside.unlink()


@dataclass(frozen=True)
class MasterKeys:
    """The current master key and the previous ones (still unwrapping during a rotation)."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @classmethod
    def parse(cls, text: str) -> MasterKeys:
        keys = [parse_key(t) for t in text.replace(",", "\n").splitlines() if t.strip()]
        if not keys:
            raise ContactKeyError("no contact master key configured")
        return cls(keys[0], tuple(keys[1:]))

    @classmethod
    def configured(cls, keys: str, keys_file: Path | None) -> MasterKeys:
        """From `GRIDLOOP_CONTACT_KEYS`, else the file; a file named but missing is made with
        one new key, readable by its owner only (the embedded default)."""
        if keys:
            return cls.parse(keys)
        if keys_file is None:
            raise ContactKeyError("set GRIDLOOP_CONTACT_KEYS or GRIDLOOP_CONTACT_KEYS_FILE")
        if not keys_file.exists():
            _make_key_file(keys_file)
        return cls.parse(keys_file.read_text())

    @classmethod
    def ephemeral(cls) -> MasterKeys:
        """A key held in memory only: for tests and throwaway systems."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def current_id(self) -> str:
        return fingerprint(self.current)

    def wrap(self, data_key: bytes, contact: str) -> tuple[str, bytes]:
        """The data key wrapped by the current master key, and that key's fingerprint."""
        return self.current_id, _seal(self.current, data_key, contact.encode())

    def unwrap(self, master_id: str, wrapped: bytes, contact: str) -> bytes:
        for key in (self.current, *self.previous):
            if fingerprint(key) == master_id:
                return _open(key, wrapped, contact.encode())
        raise ContactKeyError(f"master key {master_id} is not configured")
