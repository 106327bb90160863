"""Dashboard sessions: signing out revokes the cookie in every server process, cookies are
signed with itsdangerous, passwords may be argon2 hashes (`conveyor hash-password`),
failed sign-ins are throttled per user and per address, and `conveyor serve --workers N`
without CONVEYOR_SECRET_KEY shares one key between its processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from itsdangerous import URLSafeTimedSerializer
from typer.testing import CliRunner

from conveyor.cli import cli
from conveyor.dashboard.session import COOKIE, decode
from conveyor.errors import ConfigurationError
from conveyor.http.serve import check_exposure, share_secret_key
from conveyor.web.settings import HttpSettings
from tests.dashboard.conftest import SECRET, Browserish, csrf_of
from tests.http.conftest import ServeProcess, serve  # noqa: F401 (fixture)


async def test_signing_out_revokes_the_cookie_here_and_in_other_processes(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    await tab.login("ana", "ana-password")
    assert (await tab.get("/")).status_code == 200
    stolen = dict(tab.client.cookies)
    other_process = open_client()  # another app: its own caches, the same backend
    other_process.client.cookies.update(stolen)
    assert (await tab.post("/logout")).status_code == 303
    for replay in (open_client(), other_process):
        replay.client.cookies.update(stolen)
        page = await replay.get("/")
        assert page.status_code == 303 and "/login" in page.headers["location"]
    again = open_client()  # signing in again works, with a new session
    await again.login("ana", "ana-password")
    assert (await again.get("/")).status_code == 200


def test_the_cookie_is_an_itsdangerous_token_with_its_purpose_as_salt() -> None:
    signer = URLSafeTimedSerializer(SECRET, salt="conveyor-dashboard-session")
    value = signer.dumps({"s": "sid-1", "c": "csrf-1", "l": None, "i": 2_000_000_000,
                          "f": None})
    session = decode(SECRET, value, now=2_000_000_001)
    assert session is not None and (session.sid, session.csrf) == ("sid-1", "csrf-1")
    assert decode("another-key", value) is None
    assert decode(SECRET, value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]) is None
    other_purpose = URLSafeTimedSerializer(SECRET, salt="something-else").dumps({"s": "x"})
    assert decode(SECRET, other_purpose) is None


async def test_an_argon2_hashed_password_signs_in(
        open_client: Callable[..., Browserish]) -> None:
    hashed = PasswordHasher().hash("hashed-secret")
    users = HttpSettings.from_env({"CONVEYOR_USERS": f"eve:admin:{hashed}"}).users
    tab = open_client(users=users)
    assert (await tab.login("eve", "wrong")).status_code == 401
    assert (await tab.login("eve", "hashed-secret")).status_code == 303
    assert (await tab.get("/")).status_code == 200


def test_plaintext_passwords_are_warned_about_and_bad_hashes_refused() -> None:
    hashed = PasswordHasher().hash("x")
    settings = HttpSettings.from_env({"CONVEYOR_TOKENS": "admin:t",
                                      "CONVEYOR_USERS": f"ana:admin:plain,bo:read:{hashed}"})
    warning = check_exposure(settings, "127.0.0.1")
    assert warning is not None and "password of ana in plaintext" in warning
    assert "bo" not in warning
    both = HttpSettings.from_env({"CONVEYOR_USERS": f"a:admin:{hashed},b:read:{hashed}"})
    assert {name: user.password for name, user in both.users.items()} == {
        "a": hashed, "b": hashed}
    with pytest.raises(ConfigurationError, match="not an argon2 hash"):
        HttpSettings.from_env({"CONVEYOR_USERS": "ana:admin:$argon2id$nonsense"})


def test_hash_password_prints_a_hash_that_verifies() -> None:
    result = CliRunner().invoke(cli, ["hash-password"], input="s3cret pass\ns3cret pass\n")
    assert result.exit_code == 0, result.output
    hashed = result.stdout.strip().splitlines()[-1]
    assert hashed.startswith("$argon2id$") and PasswordHasher().verify(hashed, "s3cret pass")


async def test_failed_sign_ins_are_throttled_per_user(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    for _ in range(5):
        assert (await tab.login("ana", "guess")).status_code == 401
    blocked = await tab.login("ana", "ana-password")  # even the right password waits
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in blocked.text
    other = await tab.login("rui", "rui-password")  # another user is not blocked
    assert other.status_code == 303


async def test_failed_sign_ins_are_throttled_per_address(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    for i in range(20):
        assert (await tab.login(f"nobody{i}", "guess")).status_code == 401
    assert (await tab.login("ana", "ana-password")).status_code == 429


def test_several_server_processes_share_one_made_key() -> None:
    environ: dict[str, str] = {}
    note = share_secret_key(2, environ)
    assert note is not None and "share a key made for this run" in note
    assert len(environ["CONVEYOR_SECRET_KEY"]) >= 40
    assert share_secret_key(2, {"CONVEYOR_SECRET_KEY": "set"}) is None
    assert share_secret_key(1, {}) is None


@pytest.mark.slow
def test_serve_with_two_workers_and_no_key_keeps_everyone_signed_in(
        serve: Callable[..., ServeProcess], tmp_path: Path) -> None:  # noqa: F811
    env = {"CONVEYOR_USERS": "ana:admin:ana-password", "CONVEYOR_SECRET_KEY": ""}
    server = serve(f"sqlite:///{tmp_path}/serve.db", "--workers", "2", env=env)
    assert "share a key made for this run" in server.log.read_text()
    base = server.base + "/dashboard"
    with httpx.Client(follow_redirects=False) as first:
        csrf = csrf_of(first.get(base + "/login").text)
        signed_in = first.post(base + "/login", data={
            "csrf": csrf, "name": "ana", "password": "ana-password", "next": "/"})
        assert signed_in.status_code == 303
        cookie = first.cookies[COOKIE]
    answers = []
    for _ in range(30):  # a new connection each: the kernel spreads them over both
        with httpx.Client(cookies={COOKIE: cookie}, follow_redirects=False) as fresh:
            answers.append(fresh.get(base + "/").status_code)
    assert answers == [200] * 30

