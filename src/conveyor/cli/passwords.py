"""``conveyor hash-password``: an argon2 hash for a dashboard user in CONVEYOR_USERS."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import extras
from ._root import cli


@cli.command("hash-password")
def hash_password(
    password: Annotated[str, typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True,
        help="The password (asked for, twice, when not given; or piped on stdin).")],
) -> None:
    """Print an argon2 hash of a password: CONVEYOR_USERS="ana:admin:HASH" signs ana in
    with it, and the configuration no longer holds the password itself."""
    try:
        from ..web.passwords import hash_password as make_hash
    except ModuleNotFoundError as exc:
        extras.missing("conveyor hash-password", "server", exc)
    typer.echo(make_hash(password))
