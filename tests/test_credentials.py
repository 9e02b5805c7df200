"""Credentials at rest: sealing round trip, wrong key, key rotation, the generated key file,
PostgreSQL without a key, and reprs that never show a secret."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from actors.broker.credentials import (
    KEY_FILE_NAME,
    CredentialBox,
    CredentialError,
    Redacted,
    SecretKeyMissing,
    key_file_for,
    load_key,
    redact,
)
from actors.settings import Settings

CREDS = {
    "username": "alice",
    "password": "hunter2-very-secret",
    "app_id": "JustTrades",
    "app_version": "1.0",
    "cid": 1234,
    "sec": "api-secret-0123456789",
}


def settings(db: str, key: str | None = None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db,
        secret_key=SecretStr(key) if key is not None else None,
    )


def test_round_trip_and_ciphertext_hides_everything() -> None:
    box = CredentialBox(Fernet.generate_key())
    blob = box.seal(CREDS)
    assert isinstance(blob, bytes)
    for value in ("hunter2", "api-secret", "alice"):
        assert value.encode() not in blob
    assert box.open(blob) == CREDS
    assert box.seal(CREDS) != blob  # random IV: equal inputs do not give equal rows


def test_wrong_key_and_tampering_fail_without_leaking() -> None:
    blob = CredentialBox(Fernet.generate_key()).seal(CREDS)
    other = CredentialBox(Fernet.generate_key())
    with pytest.raises(CredentialError) as err:
        other.open(blob)
    assert "hunter2" not in str(err.value) and blob.decode() not in str(err.value)
    box = CredentialBox(Fernet.generate_key())
    good = bytearray(box.seal(CREDS))
    good[-5] ^= 1
    with pytest.raises(CredentialError):
        box.open(bytes(good))
    with pytest.raises(CredentialError):
        box.open(b"not a token")


def test_rotation_first_key_encrypts_all_decrypt() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    old_blob = CredentialBox(old).seal(CREDS)
    rotated_box = CredentialBox(f"{new.decode()}, {old.decode()}")  # comma-separated, spaces ok
    assert rotated_box.open(old_blob) == CREDS
    new_blob = rotated_box.seal(CREDS)
    assert CredentialBox(new).open(new_blob) == CREDS  # first key encrypts
    with pytest.raises(CredentialError):
        CredentialBox(old).open(new_blob)
    re_sealed = rotated_box.rotate(old_blob)
    assert CredentialBox(new).open(re_sealed) == CREDS
    assert CredentialBox([new, old]).open(old_blob) == CREDS  # a list works too


def test_malformed_key_is_a_clear_error_without_the_key() -> None:
    with pytest.raises(ValueError, match="#2 is not a Fernet key") as err:
        CredentialBox(f"{Fernet.generate_key().decode()},tooshort-secretish")
    assert "tooshort-secretish" not in str(err.value)
    with pytest.raises(ValueError):
        CredentialBox("")


def test_configured_key_wins(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    assert load_key(settings(f"sqlite:///{tmp_path}/jt.db", key)) == key.encode()
    assert not (tmp_path / KEY_FILE_NAME).exists()
    pg = "postgresql+psycopg://u@h/db"
    assert load_key(settings(pg, key)) == key.encode()


def test_key_file_created_once_with_0600_and_reused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/var/jt.db"
    path = tmp_path / "var" / KEY_FILE_NAME
    assert key_file_for(db) == path
    first = load_key(settings(db))
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    mtime = path.stat().st_mtime_ns
    assert load_key(settings(db)) == first
    assert path.stat().st_mtime_ns == mtime
    blob = CredentialBox(first).seal(CREDS)
    assert CredentialBox(load_key(settings(db))).open(blob) == CREDS  # a restart can decrypt
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_key_file_race_gives_everyone_the_same_key(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/jt.db"
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        keys.append(load_key(settings(db)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert (tmp_path / KEY_FILE_NAME).read_bytes().strip() == keys[0]


def test_postgres_without_key_is_refused() -> None:
    with pytest.raises(SecretKeyMissing, match="JT_SECRET_KEY"):
        load_key(settings("postgresql+psycopg://u@h/db"))


def test_memory_sqlite_gets_an_ephemeral_key(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        key = load_key(settings("sqlite://"))
    finally:
        os.chdir(cwd)
    CredentialBox(key)  # valid
    assert list(tmp_path.iterdir()) == []


def test_reprs_hide_secrets(caplog: pytest.LogCaptureFixture) -> None:
    key = Fernet.generate_key()
    box = CredentialBox(key)
    assert repr(box) == "CredentialBox(keys=1)" and key.decode() not in str(box)
    secret = Redacted("hunter2-very-secret")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}" and "hunter2" not in repr([secret])
    assert secret.reveal() == "hunter2-very-secret"
    assert secret == Redacted("hunter2-very-secret") and secret != Redacted("x")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("creds %s %r", secret, {"p": secret})
    assert "hunter2" not in caplog.text
    safe = redact(CREDS)
    assert safe["password"] == "***" and safe["sec"] == "***" and safe["username"] == "alice"
    s = settings("sqlite://", key.decode())
    assert key.decode() not in repr(s) and key.decode() not in str(s.model_dump())
