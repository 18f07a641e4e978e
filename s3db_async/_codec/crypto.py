"""Encryption of ``secret`` fields: AES-256-GCM with a key derived once by scrypt.

Usage::

    box = SecretBox("my passphrase", salt)      # salt: SecretBox.new_salt(), stored in s3db.json
    token = box.encrypt("hunter2")              # ASCII-safe, safe as an HTTP header value
    assert box.decrypt(token) == "hunter2"

Token layout: base64url (no padding) of ``version byte (1) | nonce (12) |
ciphertext | tag (16)``; a fresh random 96-bit nonce per encryption, so the same
plaintext never gives the same token.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import DecryptionError, EncryptionError

__all__ = ["NO_PASSPHRASE_HINT", "SecretBox"]

NO_PASSPHRASE_HINT = (
    "open the Database with passphrase=... or set the S3DB_PASSPHRASE environment variable "
    "(s3db --passphrase on the command line)"
)
"""The two ways to give a passphrase, for every error about a missing one."""

_VERSION = b"\x01"
_CHECK_TEXT = "s3db-passphrase-check"
_NONCE = 12
_TAG = 16
# scrypt work factor: 2**15 * 8 * 128 bytes = 32 MiB, ~50-100 ms, once per SecretBox.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1


class SecretBox:
    """Encrypts and decrypts short strings with a passphrase-derived key.

    :param passphrase: the database passphrase (never stored, never shown).
    :param salt: at least 16 random bytes, stored next to the data (not secret).
    :raises EncryptionError: empty passphrase or short salt.
    """

    __slots__ = ("__aead",)

    def __init__(self, passphrase: str, salt: bytes) -> None:
        if not isinstance(passphrase, str) or not passphrase:
            raise EncryptionError(
                "a non-empty passphrase is needed to encrypt secret fields",
                suggestion=NO_PASSPHRASE_HINT,
            )
        if not isinstance(salt, (bytes, bytearray)) or len(salt) < 16:
            raise EncryptionError(
                "the salt must be at least 16 bytes",
                suggestion="create one with SecretBox.new_salt()",
            )
        kdf = Scrypt(salt=bytes(salt), length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
        self.__aead = AESGCM(kdf.derive(passphrase.encode("utf-8")))

    def __repr__(self) -> str:
        return "SecretBox(key=<hidden>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("SecretBox holds a key and cannot be pickled")

    def make_check(self) -> str:
        """A token proving the passphrase (stored in ``s3db.json``; reveals nothing)."""
        return self.encrypt(_CHECK_TEXT)

    def matches_check(self, token: str | None) -> bool:
        """True when ``token`` came from :meth:`make_check` with this key (or is ``None``)."""
        if token is None:
            return True
        try:
            return self.decrypt(token) == _CHECK_TEXT
        except DecryptionError:
            return False

    @staticmethod
    def new_salt() -> bytes:
        """16 random bytes for a new database."""
        return os.urandom(16)

    def encrypt(self, plaintext: str) -> str:
        """Encrypt ``plaintext``; return an ASCII token (base64url).

        :raises EncryptionError: ``plaintext`` is not a string.
        """
        if not isinstance(plaintext, str):
            raise EncryptionError(
                f"secret values must be strings, got {type(plaintext).__name__}",
                suggestion="convert the value to str before storing it in a secret field",
            )
        nonce = os.urandom(_NONCE)
        try:
            sealed = self.__aead.encrypt(nonce, plaintext.encode("utf-8"), None)
        except (ValueError, OverflowError) as exc:  # pragma: no cover - >2 GiB values
            raise EncryptionError(
                f"could not encrypt a secret value ({type(exc).__name__})"
            ) from None
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).rstrip(b"=").decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a token made by :meth:`encrypt`.

        :raises DecryptionError: wrong passphrase, corrupted or foreign token.
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError, TypeError):
            raw = b""
        if len(raw) < 1 + _NONCE + _TAG or raw[:1] != _VERSION:
            raise DecryptionError(
                "a secret value is not a valid encrypted token (corrupted data?)",
                suggestion="check that the field was written by s3db-async with encryption",
            )
        try:
            plain = self.__aead.decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], None)
        except InvalidTag:
            raise DecryptionError(
                "could not decrypt a secret value: wrong passphrase or corrupted data",
                suggestion="open the database with the passphrase it was written with",
            ) from None
        return plain.decode("utf-8")
