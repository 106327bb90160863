"""Who may see and do what on the dashboard: login, sessions, CSRF and the read-only role
(in-process, on SQLite; the browser tests repeat the essentials end to end)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor import Conveyor
from conveyor.jobs import JobState
from conveyor.testing import adrain
from tests.dashboard.conftest import ADMIN_TOKEN, READ_TOKEN, Browserish

PAGES = ["/", "/queues/billing", "/jobs/whatever", "/workers", "/dead"]


async def failed_job(app: Conveyor) -> str:
    job_id = app.enqueue("refund", customer="c1").id
    await adrain(app)
    assert app.get_job(job_id).job.state is JobState.FAILED
    return job_id


@pytest.mark.parametrize("path", PAGES)
async def test_anonymous_visitor_is_sent_to_the_login_page(
        open_client: Callable[..., Browserish], path: str) -> None:
    tab = open_client()
    response = await tab.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/dashboard/login?next=")
    login = await tab.get("/login")
    assert login.status_code == 200 and "Sign in" in login.text


async def test_login_with_password_returns_to_the_page_asked_for(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    first = await tab.get("/workers")
    assert first.status_code == 303
    await tab.get("/login?next=%2Fworkers")
    done = await tab.post("/login", {"name": "ana", "password": "ana-password",
                                     "next": "/workers"})
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/workers"
    page = await tab.get("/workers")
    assert page.status_code == 200 and "ana" in page.text and "admin" in page.text


async def test_login_redirect_never_leaves_the_dashboard(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    await tab.get("/login")
    done = await tab.post("/login", {"name": "ana", "password": "ana-password",
                                     "next": "//evil.example/phish"})
    assert done.headers["location"] == "/dashboard/"


async def test_wrong_password_or_token_is_refused_with_a_message(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    await tab.get("/login")
    bad = await tab.post("/login", {"name": "ana", "password": "nope"})
    assert bad.status_code == 401 and "not accepted" in bad.text
    bad_token = await tab.post("/login", {"token": "not-a-token"})
    assert bad_token.status_code == 401
    assert (await tab.get("/")).status_code == 303  # still anonymous


async def test_api_token_signs_in_with_its_scope(
        open_client: Callable[..., Browserish]) -> None:
    admin, reader = open_client(), open_client()
    await admin.login(token=ADMIN_TOKEN)
    await reader.login(token=READ_TOKEN)
    assert "Pause queue" in (await admin.get("/queues/billing")).text
    page = await reader.get("/queues/billing")
    assert page.status_code == 200 and "read-only" in page.text
    assert "Pause queue" not in page.text


async def test_a_forged_session_cookie_is_anonymous(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    await tab.login("ana", "ana-password")
    cookie = tab.client.cookies.get("conveyor_session")
    assert cookie
    body, _, mac = cookie.partition(".")
    tab.client.cookies.clear()
    tab.client.cookies.set("conveyor_session", body + "." + mac[::-1], path="/dashboard/")
    assert (await tab.get("/")).status_code == 303


async def test_session_cookie_is_httponly_samesite_and_scoped_to_the_mount(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    response = await tab.get("/login")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/dashboard/" in cookie


async def test_read_only_user_sees_no_action_controls_and_is_refused_by_the_server(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = await failed_job(conveyor_app)
    reader = open_client()
    await reader.login("rui", "rui-password")
    page = await reader.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert "ValueError" in page.text and "Traceback" in page.text
    assert "/retry" not in page.text and "Remove" not in page.text
    for path in ("/queues/billing?state=failed", "/dead"):
        text = (await reader.get(path)).text
        assert "Replay" not in text and "Apply to all" not in text
        assert 'name="action"' not in text and 'name="ids"' not in text
    refused = await reader.post(f"/jobs/{job_id}/retry")  # a valid token, a read role
    assert refused.status_code == 403 and "read-only" in refused.text
    bulk = await reader.post("/queues/billing/bulk", {"action": "retry", "scope": "matching",
                                                      "state": "failed"})
    assert bulk.status_code == 403
    assert conveyor_app.get_job(job_id).job.state is JobState.FAILED


@pytest.mark.parametrize("csrf", ["", "forged-token"])
async def test_action_without_the_sessions_csrf_token_is_refused(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish], csrf: str) -> None:
    job_id = await failed_job(conveyor_app)
    admin = open_client()
    await admin.login("ana", "ana-password")
    refused = await admin.post(f"/jobs/{job_id}/retry", csrf=csrf)
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert conveyor_app.get_job(job_id).job.state is JobState.FAILED


async def test_action_from_another_site_is_refused(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = await failed_job(conveyor_app)
    admin = open_client()
    await admin.login("ana", "ana-password")
    refused = await admin.post(f"/jobs/{job_id}/retry",
                               headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    done = await admin.post(f"/jobs/{job_id}/retry", headers={"Origin": "http://dash.test"})
    assert done.status_code == 303
    assert conveyor_app.get_job(job_id).job.state is JobState.WAITING


async def test_csrf_token_of_one_session_does_not_work_in_another(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = await failed_job(conveyor_app)
    victim, attacker = open_client(), open_client()
    await victim.login("ana", "ana-password")
    await attacker.login("rui", "rui-password")
    refused = await victim.post(f"/jobs/{job_id}/retry", csrf=attacker.csrf)
    assert refused.status_code == 403


async def test_logout_ends_the_session(open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    await tab.login("ana", "ana-password")
    out = await tab.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert (await tab.get("/")).status_code == 303


async def test_removed_user_or_token_loses_its_session(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    tab = open_client()
    await tab.login("ana", "ana-password")
    assert (await tab.get("/")).status_code == 200
    # the same secret key, but ana was removed from the configuration: her cookie is void
    later = open_client(users={})
    later.client.cookies = tab.client.cookies
    assert (await later.get("/")).status_code == 303


async def test_open_mode_needs_no_login_and_says_so(
        open_client: Callable[..., Browserish]) -> None:
    tab = open_client(open=True, allowed_hosts=("dash.test",))  # the tests' host name
    page = await tab.get("/")
    assert page.status_code == 200 and "Open mode" in page.text
    assert (await tab.get("/login")).status_code == 303  # nothing to sign in to
    elsewhere = open_client(open=True)  # a name that is not this machine: DNS rebinding
    assert (await elsewhere.get("/")).status_code == 403
