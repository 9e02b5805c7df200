"""Broker credentials encrypted at rest (SPEC §5: "credentials encrypted at rest").

* :class:`CredentialBox` seals a JSON-able dict into a Fernet token (AES-128-CBC + HMAC-SHA256,
  authenticated: a wrong key or a tampered blob fails loudly instead of decrypting to garbage)
  and opens it again. With several keys it is a :class:`~cryptography.fernet.MultiFernet`: the
  first key encrypts, every key decrypts, so a key can be rotated without losing old rows
  (:meth:`CredentialBox.rotate` re-encrypts one blob under the first key).
* :func:`load_key` finds the key(s): ``JT_SECRET_KEY`` (comma-separated url-safe base64 Fernet
  keys) when set; otherwise, for SQLite only, a key generated once into ``secret.key`` next to
  the database file (mode 0600) and reused, so ``make run`` needs no configuration. PostgreSQL
  without a configured key is refused: a generated key would live on one machine only and every
  other API/actor host could not decrypt (and losing it loses every stored credential).
* :class:`Redacted` wraps a secret so ``repr``/``str``/logging never show it.

Pure: no store, no network; nothing here logs a secret or a key.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = [
    "KEY_FILE_NAME",
    "CredentialBox",
    "CredentialError",
    "Redacted",
    "SecretKeyMissing",
    "key_file_for",
    "load_key",
    "redact",
]

KEY_FILE_NAME: Final = "secret.key"
SECRET_FIELDS: Final[frozenset[str]] = frozenset(
    {"password", "sec", "secret", "client_secret", "access_token", "md_access_token", "token"}
)
"""Keys :func:`redact` masks in a credentials dict."""

T = TypeVar("T")


class CredentialError(Exception):
    """Sealed credentials could not be opened: wrong key, tampered or truncated blob. The
    message never contains the blob or any key."""


class SecretKeyMissing(RuntimeError):
    """No encryption key is configured where one must be (PostgreSQL)."""


class _SettingsLike(Protocol):
    """What :func:`load_key` reads from :class:`actors.settings.Settings`."""

    secret_key: Any  # SecretStr | str | None

    def resolved_database_url(self) -> str: ...


class Redacted(Generic[T]):
    """A secret value whose ``repr``/``str`` is ``'***'``; :meth:`reveal` returns it. Use it to
    carry a secret through code that might log or print its arguments."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "Redacted('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redacted) and bool(self._value == other._value)

    def __hash__(self) -> int:
        return hash(Redacted)


def redact(credentials: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to log or show: secret fields (:data:`SECRET_FIELDS`) become ``'***'``."""
    return {k: ("***" if k in SECRET_FIELDS else v) for k, v in credentials.items()}


def _parse_keys(raw: str | bytes) -> list[bytes]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    keys = [k.strip().encode() for k in text.split(",") if k.strip()]
    if not keys:
        raise ValueError("no encryption key given")
    for i, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError) as exc:
            # Never echo the key: say which one and what is expected.
            raise ValueError(
                f"encryption key #{i + 1} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            ) from exc
    return keys


class CredentialBox:
    """Seal/open credential dicts with one or more Fernet keys (first encrypts, all decrypt).

    ``keys``: a key, a list of keys, or a comma-separated string of keys. ``repr`` shows only how
    many keys there are."""

    __slots__ = ("_fernet", "_n")

    def __init__(self, keys: bytes | str | list[bytes] | list[str]) -> None:
        if isinstance(keys, list):
            parsed = [k for key in keys for k in _parse_keys(key)]
        else:
            parsed = _parse_keys(keys)
        self._n = len(parsed)
        self._fernet = MultiFernet([Fernet(k) for k in parsed])

    @staticmethod
    def generate_key() -> bytes:
        return Fernet.generate_key()

    def seal(self, data: Mapping[str, Any]) -> bytes:
        """Encrypt a JSON-able mapping under the first key."""
        payload = json.dumps(dict(data), separators=(",", ":"), sort_keys=True).encode()
        return self._fernet.encrypt(payload)

    def open(self, blob: bytes) -> dict[str, Any]:
        """Decrypt with any key; :class:`CredentialError` when no key fits or the blob is bad."""
        try:
            payload = self._fernet.decrypt(bytes(blob))
        except (InvalidToken, TypeError, ValueError):
            raise CredentialError(
                "stored credentials cannot be decrypted with the configured key(s) "
                "(wrong or rotated-out JT_SECRET_KEY, or a damaged row)"
            ) from None
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise CredentialError("stored credentials are not an object")
        return data

    def rotate(self, blob: bytes) -> bytes:
        """Re-encrypt ``blob`` under the first key (after adding a new key in front)."""
        try:
            return self._fernet.rotate(bytes(blob))
        except InvalidToken:
            raise CredentialError("stored credentials cannot be decrypted for rotation") from None

    def __repr__(self) -> str:
        return f"CredentialBox(keys={self._n})"

    __str__ = __repr__


def key_file_for(database_url: str) -> Path | None:
    """``secret.key`` next to a file-based SQLite database; None for in-memory SQLite and for
    every other database."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        return None
    path = database_url[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve().parent / KEY_FILE_NAME


def _read_key_file(path: Path) -> bytes:
    # Another process may be between creating and filling the file: wait briefly for content.
    for _ in range(50):
        data = path.read_bytes().strip()
        if data:
            return data
        time.sleep(0.02)
    raise SecretKeyMissing(f"key file {path} is empty; delete it to generate a new one")


def _key_from_file(path: Path) -> bytes:
    """Read the key file, creating it (0600, atomically, once) when absent."""
    if path.exists():
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            # link() fails if the name exists: the first process wins, nobody sees a partial file.
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def load_key(settings: _SettingsLike) -> bytes:
    """The configured key(s) as ``b"k1,k2"`` (see module docstring).

    Raises :class:`SecretKeyMissing` for PostgreSQL (any non-SQLite database) without
    ``JT_SECRET_KEY``, and ``ValueError`` for a malformed key."""
    raw = settings.secret_key
    if raw is not None and hasattr(raw, "get_secret_value"):
        raw = raw.get_secret_value()
    if raw:
        return b",".join(_parse_keys(str(raw)))
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        path = key_file_for(url)
        if path is None:  # in-memory database: the credentials die with it, so may the key
            return Fernet.generate_key()
        return _key_from_file(path)
    raise SecretKeyMissing(
        "JT_SECRET_KEY must be set when the database is not SQLite: broker credentials are "
        "encrypted with it and every host must share it (comma-separate several keys to rotate; "
        "the first encrypts)"
    )
