"""Who is calling: bearer tokens (API and dashboard) and dashboard users, with two scopes.

`read` sees everything; `admin` may also act (enqueue, cancel, retry, pause, ...).
Everything except /healthz needs one, unless the service runs open (`conveyor dev`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from . import passwords
from .settings import HttpSettings, Scope


@dataclass(frozen=True)
class Principal:
    name: str
    scope: Scope

    @property
    def is_admin(self) -> bool:
        return self.scope is Scope.ADMIN


ANONYMOUS_ADMIN = Principal("anonymous (open mode)", Scope.ADMIN)


def from_token(settings: HttpSettings, token: str | None) -> Principal | None:
    """The principal a bearer token stands for, compared in constant time."""
    if settings.open:
        return ANONYMOUS_ADMIN
    if not token:
        return None
    for known, scope in settings.tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            return Principal(f"token:{known[:4]}…", scope)
    return None


def from_password(settings: HttpSettings, name: str, password: str) -> Principal | None:
    """The user `name` if `password` is theirs (an argon2 hash or plaintext is checked)."""
    user = settings.users.get(name)
    if user is None:
        passwords.spend_like_a_check(password, hashed=any(
            passwords.is_hash(u.password) for u in settings.users.values()))
        return None
    if not passwords.matches(user.password, password):
        return None
    return Principal(name, user.scope)
