"""Encryption at rest for checkpoints: AES-256-GCM behind LangGraph's ``EncryptedSerializer``.

Why this module exists: LangGraph's ``EncryptedSerializer`` wraps a checkpointer's serializer
and encrypts the bytes of every value the saver passes through it, but the only cipher it
ships (``EncryptedSerializer.from_pycryptodome_aes``) needs pycryptodome, which is not a
Bulwark dependency. :class:`AesGcmCipher` is the same ``CipherProtocol`` on
``cryptography``'s ``AESGCM``, which is.

A value is stored with the type ``"<serializer type>+aes256gcm"`` and the bytes
``nonce (12 random bytes) || ciphertext || tag (16 bytes)``. What goes through the serializer
depends on the saver (the SQLite saver keeps metadata as plain JSON; the Redis saver
serializes it too): see README, "Resumable runs on Redis".

Migration: a value stored before a key was configured has a type without ``"+"`` and
``EncryptedSerializer`` reads it as plaintext, so turning encryption on keeps old threads
readable; new checkpoints are written encrypted. The reverse is refused: without a key
:class:`PlaintextSerializer` raises :class:`CheckpointEncryptionError` on an encrypted value,
as the cipher does for one written with another key or altered.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from bulwark.persistence.checkpoints import PersistenceError

__all__ = [
    "CIPHER_NAME",
    "AesGcmCipher",
    "CheckpointEncryptionError",
    "PlaintextSerializer",
    "checkpoint_serde",
    "encrypted_serde",
    "parse_key",
]

#: Cipher name recorded in the type of every encrypted value.
CIPHER_NAME = "aes256gcm"
KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_KEY_HINT = (
    "the encryption key must be 32 bytes written as base64 (44 characters) or hex "
    '(64 characters); generate one with: python -c "import os,base64;'
    'print(base64.b64encode(os.urandom(32)).decode())"'
)


class CheckpointEncryptionError(PersistenceError):
    """A stored checkpoint value is encrypted and cannot be read with the configured key.

    Raised for a value written with another key (or altered since), encrypted with an
    unknown cipher, or encrypted while no key is configured. The message never contains
    the key or the value.
    """


def parse_key(key: str) -> bytes:
    """The 32 key bytes of ``key``, given as hex (64 digits) or base64 (standard or URL-safe).

    Raises:
        ValueError: ``key`` is neither; the message does not contain it.
    """
    text = key.strip()
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ValueError(_KEY_HINT)
    return raw


class AesGcmCipher:
    """``CipherProtocol`` with AES-256-GCM: a fresh random 12-byte nonce per value, prepended.

    GCM authenticates the ciphertext, so a wrong key or an altered value fails to decrypt
    rather than yielding garbage. A value is not bound to the place it is stored (thread,
    checkpoint id): whoever can write to the store can still swap or replay whole values.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"AES-256-GCM needs a {KEY_BYTES}-byte key, got {len(key)} bytes")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """Return ``(CIPHER_NAME, nonce || ciphertext || tag)``."""
        nonce = os.urandom(_NONCE_BYTES)
        return CIPHER_NAME, nonce + self._aead.encrypt(nonce, plaintext, None)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        """Return the plaintext of a value :meth:`encrypt` produced.

        Raises:
            CheckpointEncryptionError: another cipher, a truncated value, or the tag does not
                verify (another key, or the value was altered).
        """
        if ciphername != CIPHER_NAME:
            raise CheckpointEncryptionError(
                f"cannot decrypt a checkpoint value encrypted with {ciphername[:40]!r}: "
                f"only {CIPHER_NAME} is supported"
            )
        if len(ciphertext) < _NONCE_BYTES + _TAG_BYTES:
            raise CheckpointEncryptionError(
                "cannot decrypt a checkpoint value: it is truncated or corrupt"
            )
        try:
            return self._aead.decrypt(ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], None)
        except InvalidTag:
            raise CheckpointEncryptionError(
                "cannot decrypt a checkpoint value: it was encrypted with a different key than "
                "BULWARK_ENCRYPTION_KEY, or it has been altered"
            ) from None


class PlaintextSerializer(JsonPlusSerializer):
    """LangGraph's default serializer, refusing encrypted values with a clear error.

    Used when no key is configured. Without it, reading an encrypted value fails with
    ``NotImplementedError: Unknown serialization type: msgpack+aes256gcm``.
    """

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Deserialize ``(type, bytes)`` as JsonPlusSerializer does.

        Raises:
            CheckpointEncryptionError: the value is encrypted (its type names a cipher).
        """
        type_, _ = data
        if "+" in type_:
            raise CheckpointEncryptionError(
                "cannot read an encrypted checkpoint value: set BULWARK_ENCRYPTION_KEY to the "
                "key it was written with"
            )
        return super().loads_typed(data)


def encrypted_serde(key: str) -> EncryptedSerializer:
    """An ``EncryptedSerializer`` with AES-256-GCM under ``key`` (base64 or hex, 32 bytes).

    It encrypts every value it serializes and still reads values stored unencrypted.

    Raises:
        ValueError: ``key`` is not 32 bytes in base64 or hex; the message does not contain it.
    """
    return EncryptedSerializer(AesGcmCipher(parse_key(key)), JsonPlusSerializer())


def checkpoint_serde(key: str | None) -> EncryptedSerializer | PlaintextSerializer:
    """The serializer a checkpointer uses: :func:`encrypted_serde` with a key, else plaintext.

    Raises:
        ValueError: ``key`` is given but not a valid key.
    """
    return encrypted_serde(key) if key is not None else PlaintextSerializer()
