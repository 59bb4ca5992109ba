"""Random secrets and mosquitto password-file lines, without ``mosquitto_passwd``.

mosquitto 2.0's default format is ``user:$7$<iterations>$<b64 salt>$<b64 hash>`` with
PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte salt and a 64-byte hash (docs/architecture.md#broker).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets

ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64
PASSWORD_BYTES = 24  # 32 URL-safe characters


def new_password() -> str:
    """A random password of 32 URL-safe characters (no quoting needed anywhere)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_line(user: str, password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """One password-file line (no newline) in mosquitto's ``$7$`` PBKDF2-SHA512 format."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise ValueError(f"invalid mosquitto user name {user!r}")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"{user}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def parse_file(text: str) -> dict[str, str]:
    """The lines of a password file by user name (blank lines and comments skipped)."""
    lines: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and ":" in line:
            lines[line.split(":", 1)[0]] = line
    return lines


def verify_line(line: str, password: str) -> bool:
    """Whether ``line`` (``user:$7$...``) accepts ``password``; False for any other format."""
    try:
        _user, encoded = line.split(":", 1)
        _, kind, iterations, salt_b64, hash_b64 = encoded.split("$")
        if kind != "7":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations), len(expected))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(digest, expected)
