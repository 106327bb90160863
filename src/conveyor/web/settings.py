"""Settings of the HTTP service and dashboard, read from CONVEYOR_* environment variables.

    CONVEYOR_TOKENS           "admin:s3cret,read:viewer-token"  bearer tokens and their scope
    CONVEYOR_USERS            "alice:admin:HASH,bob:read:HASH"  dashboard logins; HASH from
                              `conveyor hash-password` (argon2), or a plaintext password
                              (warned about at start-up)
    CONVEYOR_SECRET_KEY       signs dashboard sessions and CSRF tokens (random if unset:
                              `conveyor serve --workers N` makes one for all N processes)
    CONVEYOR_MAX_BODY_BYTES   largest request body accepted (default 1 MiB)
    CONVEYOR_OPEN             "1": no auth at all (only `conveyor dev`, bound to 127.0.0.1)
    CONVEYOR_ALLOWED_HOSTS    "dev.local,box:8000"  in open mode, Host names answered besides
                              localhost, 127.0.0.1 and [::1] (see conveyor.web.guard)
    CONVEYOR_WEBHOOK_SECRETS  "whsec_...,whsec_..."  signing secrets, newest first
    CONVEYOR_WEBHOOK_ALLOW_PRIVATE  "1": allow webhook URLs on private/loopback addresses
"""

from __future__ import annotations

import enum
import os
import secrets
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from . import passwords


class Scope(enum.StrEnum):
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    name: str
    scope: Scope
    password: str


@dataclass(frozen=True)
class HttpSettings:
    tokens: dict[str, Scope] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    max_body_bytes: int = 1024 * 1024
    open: bool = False  # no auth: for `conveyor dev` on loopback only
    allowed_hosts: tuple[str, ...] = ()  # open mode: Host names besides loopback ones
    webhook_secrets: tuple[str, ...] = ()
    webhook_allow_private: bool = False

    @property
    def plaintext_users(self) -> list[str]:
        """Users whose password is given in plaintext rather than as an argon2 hash."""
        return sorted(u.name for u in self.users.values() if not passwords.is_hash(u.password))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> HttpSettings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        if env.get("CONVEYOR_TOKENS"):
            values["tokens"] = _tokens(env["CONVEYOR_TOKENS"])
        if env.get("CONVEYOR_USERS"):
            values["users"] = _users(env["CONVEYOR_USERS"])
        if env.get("CONVEYOR_SECRET_KEY"):
            values["secret_key"] = env["CONVEYOR_SECRET_KEY"]
        if env.get("CONVEYOR_MAX_BODY_BYTES"):
            try:
                values["max_body_bytes"] = int(env["CONVEYOR_MAX_BODY_BYTES"])
            except ValueError:
                raise ConfigurationError("CONVEYOR_MAX_BODY_BYTES must be a number") from None
        values["open"] = env.get("CONVEYOR_OPEN", "") in {"1", "true", "yes"}
        if env.get("CONVEYOR_ALLOWED_HOSTS"):
            values["allowed_hosts"] = tuple(
                h.strip() for h in env["CONVEYOR_ALLOWED_HOSTS"].split(",") if h.strip())
        if env.get("CONVEYOR_WEBHOOK_SECRETS"):
            values["webhook_secrets"] = tuple(
                s.strip() for s in env["CONVEYOR_WEBHOOK_SECRETS"].split(",") if s.strip())
        values["webhook_allow_private"] = env.get("CONVEYOR_WEBHOOK_ALLOW_PRIVATE", "") in {
            "1", "true", "yes"}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _tokens(spec: str) -> dict[str, Scope]:
    out: dict[str, Scope] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        scope, sep, token = item.partition(":")
        if not sep or not token or scope not in Scope.__members__.values():
            raise ConfigurationError(
                f"bad CONVEYOR_TOKENS entry {item.split(':')[0]!r}...: use scope:token with "
                "scope read or admin")
        out[token] = Scope(scope)
    return out


def _user_entries(spec: str) -> list[str]:
    """Entries split on commas, except the commas inside an argon2 hash
    ("$argon2id$v=19$m=65536,t=3,p=4$..."): a piece without a colon continues the last."""
    entries: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if entries and ":" not in part and passwords.is_hash(entries[-1].split(":", 2)[-1]):
            entries[-1] += "," + part
        elif part:
            entries.append(part)
    return entries


def _users(spec: str) -> dict[str, User]:
    out: dict[str, User] = {}
    for item in _user_entries(spec):
        name, scope, password = [*item.split(":", 2), "", ""][:3]
        if not name or not password or scope not in Scope.__members__.values():
            raise ConfigurationError(
                f"bad CONVEYOR_USERS entry for {name!r}: use name:scope:password")
        if passwords.is_hash(password):
            passwords.check_hash(password, name)
        out[name] = User(name, Scope(scope), password)
    return out
