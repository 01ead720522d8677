"""Private keys on disk: plain hex key files and encrypted Ethereum V3 keystores.

A key file is either

- **hex**: one 32-byte private key per line, `0x` optional, `#` comments allowed (tests,
  the demo, `gpu-oracle attest --keys` with several keys); or
- **a V3 keystore** (the JSON geth, clef and `eth_account.Account.encrypt` write; what
  `gpu-oracle init` creates): one key, encrypted with a passphrase (scrypt by default).

A keystore's passphrase comes from a `Passphrase` source: an environment variable
(`GPU_ORACLE_PASSPHRASE` unless configured otherwise) or a file whose first line is the
passphrase. It is never a command-line argument (other users can read those in `ps`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account

DEFAULT_PASSPHRASE_ENV = "GPU_ORACLE_PASSPHRASE"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_SCRYPT_N = 2**18  # geth's standard work factor: about 1 s and 256 MB per key


class KeyFileError(ValueError):
    """A key file cannot be read or decrypted; the message says what to do."""


@dataclass(frozen=True)
class Passphrase:
    """Where a keystore's passphrase comes from: a file (first line) or an env var."""

    env: str = DEFAULT_PASSPHRASE_ENV
    file: Path | None = None

    def describe(self) -> str:
        return (f"the password file {self.file}" if self.file is not None
                else f"the environment variable {self.env}")

    def read(self, purpose: str) -> str:
        """The passphrase; `purpose` ends the sentence of the error ("to decrypt X")."""
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8")
            except FileNotFoundError as exc:
                raise KeyFileError(
                    f"the password file {self.file} does not exist; it must hold the "
                    f"passphrase (first line) {purpose}") from exc
            except OSError as exc:
                raise KeyFileError(f"cannot read the password file {self.file} ({exc}); it "
                                   f"must hold the passphrase {purpose}") from exc
            value = text.splitlines()[0] if text else ""
            if not value:
                raise KeyFileError(f"the password file {self.file} is empty; write the "
                                   f"passphrase on its first line {purpose}")
            return value
        value = os.environ.get(self.env, "")
        if not value:
            raise KeyFileError(
                f"the environment variable {self.env} is not set: it must hold the passphrase "
                f"{purpose}. Set it without leaving it in your shell history, e.g. "
                f"`read -rs {self.env} && export {self.env}`; or name a password file "
                "instead ([keystore] password_file in a node's config)")
        return value


def is_keystore(text: str) -> bool:
    """Whether a key file's text is a JSON keystore rather than lines of hex."""
    return text.lstrip().startswith("{")


def read_keys(path: Path, passphrase: Passphrase | None = None) -> list[bytes]:
    """The 32-byte private keys in a key file: hex lines, or one V3 keystore decrypted
    with `passphrase` (default: the `GPU_ORACLE_PASSPHRASE` environment variable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"key file {path} is neither hex keys nor a JSON keystore") from exc
    if is_keystore(text):
        return [_decrypt(path, text, passphrase or Passphrase())]
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            raw = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise KeyFileError(f"{path}:{number} is not a 32-byte hex private key")
        keys.append(raw)
    if not keys:
        raise KeyFileError(f"{path} holds no keys")
    return keys


def _decrypt(path: Path, text: str, passphrase: Passphrase) -> bytes:
    try:
        keystore: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path} looks like a JSON keystore but is not valid JSON "
                           f"({exc}); restore it from your backup") from exc
    if not isinstance(keystore, dict) or keystore.get("version") != 3 or "crypto" not in keystore:
        raise KeyFileError(f"{path} is JSON but not an Ethereum V3 keystore (it needs "
                           "\"version\": 3 and \"crypto\"); restore it from your backup")
    secret = passphrase.read(f"to decrypt the keystore {path}")
    try:
        key = bytes(Account.decrypt(keystore, secret))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeyFileError(
                f"wrong passphrase for the keystore {path} (read from "
                f"{passphrase.describe()}): give the passphrase it was created with. A lost "
                "passphrase cannot be recovered: create new keys with `gpu-oracle init` and "
                "have the hub admin replace this signer (`ape run oracle set-signers`)"
            ) from exc
        raise KeyFileError(f"cannot decrypt the keystore {path}: {exc}") from exc
    except (KeyError, TypeError, NotImplementedError) as exc:
        raise KeyFileError(f"{path} is a damaged or unsupported keystore ({exc!r}); restore "
                           "it from your backup") from exc
    stated = keystore.get("address")
    actual = Account.from_key(key).address
    if stated and actual.lower().removeprefix("0x") != str(stated).lower().removeprefix("0x"):
        raise KeyFileError(f"the keystore {path} says it holds 0x{stated} but decrypts to "
                           f"{actual}: the file was altered; restore it from your backup")
    return key


def write_keystore(path: Path, key: bytes, passphrase: str, *,
                   scrypt_n: int = DEFAULT_SCRYPT_N) -> str:
    """Encrypt `key` into a new V3 keystore at `path` (mode 0600, never overwriting an
    existing file); returns the key's address."""
    keystore = Account.encrypt(key, passphrase, kdf="scrypt", iterations=scrypt_n)
    write_new(path, (json.dumps(keystore, indent=2) + "\n").encode(), mode=0o600)
    return Account.from_key(key).address


def write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Create `path` with `data` (FileExistsError if it exists; nothing is left behind
    if writing fails)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
