"""Dashboard passwords: argon2 hashes (``conveyor hash-password``) or, warned about,
plaintext, as CONVEYOR_USERS gives them."""

from __future__ import annotations

import functools
import hmac

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ConfigurationError

PREFIX = "$argon2"


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def is_hash(stored: str) -> bool:
    return stored.startswith(PREFIX)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_hash(stored: str, user: str) -> None:
    """ConfigurationError unless `stored` is an argon2 hash argon2-cffi can read."""
    try:
        extract_parameters(stored)
    except (InvalidHashError, ValueError):
        raise ConfigurationError(f"CONVEYOR_USERS: the password hash of {user!r} is not an "
                                 "argon2 hash (make one with `conveyor hash-password`)") from None


def matches(stored: str, given: str) -> bool:
    """Whether `given` is the password `stored` stands for (a hash or plaintext)."""
    if is_hash(stored):
        try:
            return _hasher().verify(stored, given)
        except (VerificationError, InvalidHashError):
            return False
    return hmac.compare_digest(stored.encode(), given.encode())


@functools.cache
def _dummy() -> str:
    return _hasher().hash("not a password of anyone")


def spend_like_a_check(given: str, hashed: bool) -> None:
    """The work of a real check, for an unknown name (no timing tells names apart)."""
    if hashed:
        matches(_dummy(), given)
    else:
        hmac.compare_digest(b"x", given.encode())
