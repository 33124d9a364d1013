"""Encryption at rest for identity data: AES-256-GCM with a key ring that can rotate.

Every image, every extracted field and every face embedding of a verification session is
stored only as a sealed blob::

    key id (8 ASCII hex characters) | nonce (12 random bytes) | ciphertext and GCM tag

The associated data binds a blob to its session and purpose
(``vigil-identity|vs_123|document_front``): a blob copied onto another session, or into
another column, fails to open instead of being read as someone else's document.

The key ring holds one current key (new blobs) and any number of older ones (old blobs
still open); the key id in each blob says which key sealed it, so keys rotate without
re-encrypting everything at once. A key is 32 random bytes, written in base64; the service
reads them from ``VIGIL_IDENTITY_KEY`` (``new,old,...``, the first is current) and
``vigil identity key`` prints a new one.

.. warning::
   Losing every key loses every sealed blob: there is no recovery. Keep the keys in a
   secret manager, apart from the database backups.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vigil._errors import ConfigError, VigilError

KEY_BYTES = 32
NONCE_BYTES = 12  # 96 bits: GCM's native nonce size; random per blob
KEY_ID_CHARS = 8


class SealError(VigilError):
    """A sealed blob cannot be opened: unknown key id, tampered, or bound elsewhere."""


def new_key() -> str:
    """A fresh 256-bit key, in base64 (what ``VIGIL_IDENTITY_KEY`` holds).

    >>> len(base64.b64decode(new_key()))
    32
    """
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _parse_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ConfigError("an identity key must be 32 random bytes in base64 (44 characters); "
                          "make one with `vigil identity key`")
    return raw


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"vigil-identity-key-id" + key).hexdigest()[:KEY_ID_CHARS]


class KeyRing:
    """The keys that seal and open identity blobs: the first is current, the rest are old.

    >>> ring = KeyRing.from_text(new_key())
    >>> blob = ring.seal(b"Ana Silva", session_id="vs_1", purpose="claimed")
    >>> b"Ana" in blob, ring.open(blob, session_id="vs_1", purpose="claimed")
    (False, b'Ana Silva')
    """

    def __init__(self, keys: Iterable[bytes]) -> None:
        keys = list(keys)
        if not keys:
            raise ConfigError("an identity key ring needs at least one key; make one with "
                              "`vigil identity key`")
        self._keys: dict[str, AESGCM] = {}
        self._macs: dict[str, bytes] = {}
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ConfigError("an identity key must be 32 bytes")
            kid = _key_id(key)
            self._keys.setdefault(kid, AESGCM(key))
            # a separate key for lookup tokens, so a token never reveals the sealing key
            self._macs.setdefault(kid, hmac.new(key, b"vigil-identity-lookup",
                                                hashlib.sha256).digest())
        self.current = _key_id(keys[0])

    @classmethod
    def from_text(cls, text: str) -> KeyRing:
        """The ring from ``"current,old,..."`` base64 keys (``VIGIL_IDENTITY_KEY``)."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("no identity key: set VIGIL_IDENTITY_KEY to the output of "
                              "`vigil identity key`")
        return cls(_parse_key(part) for part in text.split(",") if part.strip())

    @property
    def key_ids(self) -> list[str]:
        """Every key's id, the current one first."""
        return [self.current, *(k for k in self._keys if k != self.current)]

    # blobs

    def seal(self, data: bytes, *, session_id: str, purpose: str) -> bytes:
        """``data`` encrypted with the current key, bound to ``session_id`` and ``purpose``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current].encrypt(nonce, bytes(data), _aad(session_id, purpose))
        return self.current.encode() + nonce + sealed

    def open(self, blob: bytes, *, session_id: str, purpose: str) -> bytes:
        """The plaintext of a sealed blob; raises :class:`SealError` if it cannot be opened."""
        blob = bytes(blob)
        kid = blob[:KEY_ID_CHARS].decode("ascii", "replace")
        aead = self._keys.get(kid)
        if aead is None:
            raise SealError(f"the blob was sealed with key {kid!r}, which is not in the key "
                            "ring; add the old key after the current one in VIGIL_IDENTITY_KEY")
        nonce = blob[KEY_ID_CHARS:KEY_ID_CHARS + NONCE_BYTES]
        try:
            return aead.decrypt(nonce, blob[KEY_ID_CHARS + NONCE_BYTES:],
                                _aad(session_id, purpose))
        except InvalidTag:
            raise SealError(f"the {purpose} blob of {session_id} does not open: tampered with, "
                            "or it belongs to another session or purpose") from None

    def seal_json(self, value: Any, *, session_id: str, purpose: str) -> bytes:
        """:meth:`seal` for a JSON-able value."""
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
        return self.seal(text.encode(), session_id=session_id, purpose=purpose)

    def open_json(self, blob: bytes, *, session_id: str, purpose: str) -> Any:
        """:meth:`open` for a blob made by :meth:`seal_json`."""
        return json.loads(self.open(blob, session_id=session_id, purpose=purpose))

    # lookups without plaintext

    def lookup_tokens(self, value: str) -> dict[str, str]:
        """Per key id, a keyed hash (HMAC-SHA-256) of ``value``, to find a row by a secret
        value without storing it: ID numbers are short enough that a plain hash would be
        reversed by trying them all."""
        return {kid: hmac.new(mac, value.encode(), hashlib.sha256).hexdigest()
                for kid, mac in self._macs.items()}


def _aad(session_id: str, purpose: str) -> bytes:
    return f"vigil-identity|{session_id}|{purpose}".encode()
