"""The signing key of the ledger's checkpoints: where it lives, how it is made, how it is trusted.

One Ed25519 key per user, made on first use in the per-user data folder (platformdirs:
``$XDG_DATA_HOME/interlock`` or ``~/.local/share/interlock`` on Linux), private half in
``keys/ledger-ed25519.pem`` (PKCS#8, mode 0600), public half next to it as ``.pub.pem``. The
public half is what a verifier trusts; keeping a copy of it off this machine is what makes a
forged re-signing detectable (see docs/evidence.md, "Keys").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

import platformdirs
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

APP = "interlock"
KEY_NAME = "ledger-ed25519.pem"
PUBLIC_SUFFIX = ".pub.pem"


class KeyFileError(Exception):
    """A key file that cannot be used; the message names the file and what to do."""


def data_dir() -> Path:
    """The per-user data folder (honours ``XDG_DATA_HOME``)."""
    return platformdirs.user_data_path(APP)


def default_ledger_path() -> Path:
    return data_dir() / "ledger.sqlite"


def default_key_path() -> Path:
    return data_dir() / "keys" / KEY_NAME


def public_path(private: Path) -> Path:
    """``keys/ledger-ed25519.pem`` -> ``keys/ledger-ed25519.pub.pem``."""
    name = private.name.removesuffix(".pem")
    return private.with_name(name + PUBLIC_SUFFIX)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: bytes) -> str:
    """A short fingerprint of a raw public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public).hexdigest()[:16]


def load_or_create(path: Path | None = None) -> Ed25519PrivateKey:
    """The private key at ``path`` (default: the per-user one), created there if absent.

    Creation is atomic: the key is written to a temporary file with mode 0600 and hard-linked into
    place, so two processes that start at once end with one key and neither sees half a file.
    """
    path = path or default_key_path()
    if path.exists():
        return load_private(path)
    try:
        return _create(path)
    except OSError as exc:
        raise KeyFileError(
            f"{path}: cannot create the signing key ({exc.strerror}); choose another --key"
        ) from None


def _create(path: Path) -> Ed25519PrivateKey:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process won the race: use its key
            return load_private(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _write_public(key.public_key(), public_path(path))
    return key


def _write_public(key: Ed25519PublicKey, path: Path) -> None:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the signing key ({exc.strerror})") from None
    # As ssh does: a private key others can read may already be someone else's key too.
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: signing key is readable by others; run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{path}: not an unencrypted PEM private key; point --key at the ledger's Ed25519 key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key; the ledger signs with Ed25519 only")
    if not public_path(path).exists():  # repair a deleted export, so verifiers can find it
        _write_public(key.public_key(), public_path(path))
    return key


def load_public(path: Path) -> bytes:
    """A raw 32-byte Ed25519 public key from a PEM file (a ``.pub.pem`` or a private key's file)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the public key ({exc.strerror})") from None
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return raw_public(private.public_key())
        else:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                return raw_public(public)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path}: not a PEM Ed25519 public key; pass the .pub.pem file") from None
    raise KeyFileError(f"{path}: not an Ed25519 key; the ledger signs with Ed25519 only")
