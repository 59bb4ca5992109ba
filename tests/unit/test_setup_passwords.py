"""mosquitto password-file lines made without mosquitto_passwd (docs/architecture.md#broker)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from aurora.setup import passwords


def test_a_line_has_mosquittos_pbkdf2_sha512_layout() -> None:
    """mosquitto 2.0 reads ``user:$7$101$<12-byte salt>$<64-byte hash>``; anything else fails login."""
    line = passwords.hash_line("bridge", "secret")
    match = re.fullmatch(r"bridge:\$7\$101\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)", line)
    assert match is not None
    assert 12 == len(base64.b64decode(match[1]))
    assert 64 == len(base64.b64decode(match[2]))


def test_a_known_salt_gives_the_hash_mosquitto_passwd_gives() -> None:
    """PBKDF2-HMAC-SHA512 over the password with the salt, 101 rounds (fixed vector)."""
    salt = bytes(range(12))
    digest = base64.b64encode(hashlib.pbkdf2_hmac("sha512", b"pw", salt, 101, 64)).decode()
    expected = f"bridge:$7$101$AAECAwQFBgcICQoL${digest}"
    assert expected == passwords.hash_line("bridge", "pw", salt=salt)


def test_verify_accepts_the_password_and_nothing_else() -> None:
    line = passwords.hash_line("web", "right")
    assert passwords.verify_line(line, "right")
    assert not passwords.verify_line(line, "wrong")
    assert not passwords.verify_line("web:$6$abc$def", "right")  # another format
    assert not passwords.verify_line("web:garbage", "right")


def test_two_lines_for_one_password_differ_by_their_salt() -> None:
    assert passwords.hash_line("fetch", "pw") != passwords.hash_line("fetch", "pw")


@pytest.mark.parametrize("user", ["", "a:b", "a b"])
def test_a_user_name_mosquitto_cannot_read_is_refused(user: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        passwords.hash_line(user, "pw")


def test_parse_file_keys_lines_by_user_and_skips_comments() -> None:
    text = "# comment\n\nbridge:$7$1$a$b\nweb:$7$1$c$d\n"
    assert {"bridge": "bridge:$7$1$a$b", "web": "web:$7$1$c$d"} == passwords.parse_file(text)


def test_new_passwords_are_long_random_and_need_no_quoting() -> None:
    a, b = passwords.new_password(), passwords.new_password()
    assert a != b
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", a)
