"""Signed webhooks, end to end: a real `conveyor worker` process runs the jobs and the
deliveries, a real HTTP receiver answers, and the `standardwebhooks` package (not
conveyor's code) verifies every signature."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from conveyor import Conveyor, InvalidOptionError, JobState, webhooks
from conveyor.backends import backend_for
from conveyor.backends.base import Backend
from conveyor.jobs import Job
from conveyor.testing import drain
from tests.helpers import WorkerProcess, wait_until
from tests.http import wh_app
from tests.http.wh_receiver import Receiver
from tests.http.wh_server import ServerProcess

T = TypeVar("T")
TOKENS = "read:hooks-reader,admin:hooks-admin"
READ = {"Authorization": "Bearer hooks-reader"}
ADMIN = {"Authorization": "Bearer hooks-admin"}


def _enable(app: Conveyor, allow_private: bool) -> webhooks.Webhooks:
    return webhooks.enable(app, secrets=[wh_app.NEW_SECRET, wh_app.OLD_SECRET],
                           schedule="0.05s,0.1s,0.2s", timeout=5, allow_private=allow_private,
                           queues={})


@pytest.fixture
def app(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    url = store_url  # each backend (tests/http/conftest.py)
    monkeypatch.setenv("CONVEYOR_URL", url)
    monkeypatch.setenv("CONVEYOR_WEBHOOK_ALLOW_PRIVATE", "1")
    wh_app.app.use(url)
    _enable(wh_app.app, allow_private=True)
    yield wh_app.app
    wh_app.app.close()
    _enable(wh_app.app, allow_private=False)


@pytest.fixture
def worker(app: Conveyor) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(app.url, "--lease", "3", app="tests.http.wh_app:app")
    yield proc
    output = proc.stop()
    assert "Traceback" not in output, output


def _read(app: Conveyor, read: Callable[[Backend], Awaitable[T]]) -> T:
    """Run a read of the webhook module on a backend connection of its own."""
    async def run() -> T:
        backend = backend_for(app.url)
        await backend.open()
        try:
            return await read(backend)
        finally:
            await backend.close()
    return asyncio.run(run())


def _deliveries(app: Conveyor, job_id: str) -> list[Job]:
    return _read(app, lambda backend: webhooks.list_deliveries(backend, job_id))


def _finished_delivery(app: Conveyor, job_id: str) -> Job:
    found: list[Job] = []

    def done() -> bool:
        found[:] = [d for d in _deliveries(app, job_id) if d.is_final]
        return bool(found)

    wait_until(done, 30, f"a finished webhook delivery for job {job_id}")
    return found[0]


def test_flaky_receiver_gets_exactly_one_accepted_delivery_signed_per_standard(
        app: Conveyor, worker: WorkerProcess) -> None:
    with Receiver({"/flaky": [500, 503, 200]}) as rx:
        job = wh_app.add.options(webhook=rx.url("/flaky")).enqueue(2, 3)
        assert job.job.meta["webhook"] == rx.url("/flaky")
        delivery = _finished_delivery(app, job.id)
        assert delivery.state is JobState.COMPLETED
        assert [e["message"] for e in delivery.errors] == [
            f"{rx.url('/flaky')} answered 500: 'ok'", f"{rx.url('/flaky')} answered 503: 'ok'"]
        # A later job's delivery arrives after any duplicate of the first could have.
        later = wh_app.add.options(webhook=rx.url("/later")).enqueue(1, 1)
        _finished_delivery(app, later.id)
        got = rx.requests("/flaky")

    assert [r.status for r in got] == [500, 503, 200]
    assert len({r.headers["webhook-id"] for r in got}) == 1  # the receiver's idempotency key
    for secret in (wh_app.NEW_SECRET, wh_app.OLD_SECRET):  # either secret verifies: rotation
        for received in got:
            Webhook(secret).verify(received.body, received.headers)
    body = json.loads(got[-1].body)
    assert body["type"] == "job.completed"
    assert body["data"]["id"] == job.id
    assert body["data"]["state"] == "completed"
    assert body["data"]["result"] == 5
    assert body["data"]["task"] == "add"
    assert body["data"]["finished_at"].endswith("Z")
    assert len(got[-1].headers["webhook-signature"].split(" ")) == 2


def test_failed_job_is_announced_with_its_error(app: Conveyor, worker: WorkerProcess) -> None:
    with Receiver() as rx:
        job = wh_app.explode.options(webhook=rx.url("/failed")).enqueue("no paper")
        _finished_delivery(app, job.id)
        [received] = rx.requests("/failed")
    body = Webhook(wh_app.NEW_SECRET).verify(received.body, received.headers)
    assert body["type"] == "job.failed"
    assert body["data"]["state"] == "failed"
    assert body["data"]["error"]["message"] == "no paper"
    assert "traceback" not in body["data"]["error"]


def test_queue_level_url_announces_jobs_without_their_own(
        app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver() as rx:
        monkeypatch.setenv("CONVEYOR_WEBHOOK_QUEUES", f"work={rx.url('/queue')}")
        proc = WorkerProcess(app.url, app="tests.http.wh_app:app")
        try:
            job = wh_app.add.enqueue(20, 22)
            _finished_delivery(app, job.id)
        finally:
            proc.stop()
        [received] = rx.requests("/queue")
    assert Webhook(wh_app.OLD_SECRET).verify(received.body, received.headers)["data"][
        "result"] == 42


def test_forged_and_replayed_deliveries_fail_verification(
        app: Conveyor, worker: WorkerProcess) -> None:
    with Receiver() as rx:
        job = wh_app.add.options(webhook=rx.url("/hook")).enqueue(1, 2)
        _finished_delivery(app, job.id)
        [received] = rx.requests("/hook")
    verifier = Webhook(wh_app.NEW_SECRET)
    verifier.verify(received.body, received.headers)  # the genuine one passes

    tampered = received.body.replace(b'"result":3', b'"result":4')
    assert tampered != received.body
    with pytest.raises(WebhookVerificationError):
        verifier.verify(tampered, received.headers)
    with pytest.raises(WebhookVerificationError):  # signed with a secret we never had
        Webhook(webhooks.new_secret()).verify(received.body, received.headers)
    with pytest.raises(WebhookVerificationError):  # another message's id
        verifier.verify(received.body, {**received.headers, "webhook-id": "msg_other"})

    # A captured delivery replayed ten minutes later: its signature is genuine, but stale.
    config = webhooks.webhooks_of(app)
    assert config is not None
    old = webhooks.signed_headers(config.config, received.headers["webhook-id"],
                                  received.body, timestamp=int(time.time()) - 600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(received.body, old)
    fresh = webhooks.signed_headers(config.config, received.headers["webhook-id"],
                                    received.body)
    verifier.verify(received.body, fresh)


def test_410_disables_the_url_until_its_marker_is_removed(
        app: Conveyor, worker: WorkerProcess) -> None:
    with Receiver({"/gone": [410]}) as rx:
        url = rx.url("/gone")
        first = wh_app.add.options(webhook=url).enqueue(1, 1)
        gone = _finished_delivery(app, first.id)
        assert gone.state is JobState.FAILED
        assert gone.attempt == 1  # no retry after 410
        assert gone.errors[-1]["type"] == "conveyor.webhooks.EndpointGoneError"
        assert webhooks.delivery_outcome(gone) == "gone"

        second = wh_app.add.options(webhook=url).enqueue(2, 2)
        skipped = _finished_delivery(app, second.id)
        assert skipped.state is JobState.FAILED
        assert "disabled" in skipped.errors[-1]["message"]
        assert len(rx.requests("/gone")) == 1  # the second delivery sent nothing

        markers = _read(app, webhooks.gone_markers)
        assert list(markers) == [url]
        app.remove_job(markers[url].id)  # an operator enables the URL again
        rx.scripts["/gone"] = [200]
        third = wh_app.add.options(webhook=url).enqueue(3, 3)
        assert _finished_delivery(app, third.id).state is JobState.COMPLETED
        assert [r.status for r in rx.requests("/gone")] == [410, 200]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook",
    "http://192.168.1.1/hook", "http://224.0.0.1/hook", "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",
])
def test_private_addresses_are_refused_at_enqueue_by_default(app: Conveyor, url: str) -> None:
    _enable(app, allow_private=False)
    with pytest.raises(InvalidOptionError, match="public addresses only"):
        wh_app.add.options(webhook=url)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "/relative", "https://", 42,
                                 "http://example.com/" + "x" * 3000])
def test_malformed_webhook_urls_are_refused(app: Conveyor, url: object) -> None:
    with pytest.raises(InvalidOptionError):
        wh_app.add.options(webhook=url)


def test_webhook_option_needs_webhooks_enabled(tmp_path: Path) -> None:
    plain = Conveyor(f"sqlite:///{tmp_path}/plain.db")

    @plain.task
    def noop() -> None: ...

    with pytest.raises(InvalidOptionError, match=r"webhooks.enable\(app\)"):
        noop.options(webhook="https://example.com/hook")


def _loopback_name() -> str:
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    except OSError:
        pytest.skip("this machine's name does not resolve")
    if not all(webhooks.address_problem(str(a)) for a in addresses):
        pytest.skip("this machine's name resolves to a public address")
    return name


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
        app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _loopback_name()
    monkeypatch.setenv("CONVEYOR_WEBHOOK_ALLOW_PRIVATE", "0")
    _enable(app, allow_private=False)
    with Receiver(host="0.0.0.0") as rx:
        job = wh_app.add.options(webhook=rx.url("/hidden", host=name)).enqueue(1, 2)
        proc = WorkerProcess(app.url, app="tests.http.wh_app:app")
        try:
            refused = _finished_delivery(app, job.id)
        finally:
            proc.stop()
        assert rx.requests() == []
    assert refused.state is JobState.FAILED
    assert refused.attempt == 1
    assert refused.errors[-1]["type"] == "conveyor.webhooks.WebhookRefusedError"
    assert "public addresses only" in refused.errors[-1]["message"]


def test_redirects_are_not_followed(app: Conveyor, worker: WorkerProcess) -> None:
    with Receiver({"/moved": [301, 301, 301, 301]}) as rx:
        job = wh_app.add.options(webhook=rx.url("/moved")).enqueue(1, 2)
        failed = _finished_delivery(app, job.id)
    assert failed.state is JobState.FAILED
    assert "redirects are not followed" in failed.errors[-1]["message"]
    assert len(failed.errors) == failed.max_attempts == 4


def test_bad_configuration_is_a_clear_error() -> None:
    from conveyor import ConfigurationError

    with pytest.raises(ConfigurationError, match="signing secret"):
        webhooks.WebhookConfig.from_env({})
    with pytest.raises(ConfigurationError, match="whsec_"):
        webhooks.WebhookConfig.from_env({"CONVEYOR_WEBHOOK_SECRETS": "hunter2"})
    with pytest.raises(ConfigurationError, match="queue=https"):
        webhooks.WebhookConfig.from_env({"CONVEYOR_WEBHOOK_SECRETS": webhooks.new_secret(),
                                         "CONVEYOR_WEBHOOK_QUEUES": "reports"})
    config = webhooks.WebhookConfig.from_env({
        "CONVEYOR_WEBHOOK_SECRETS": f"{wh_app.NEW_SECRET}, {wh_app.OLD_SECRET}",
        "CONVEYOR_WEBHOOK_SCHEDULE": "1s,2m", "CONVEYOR_WEBHOOK_TIMEOUT": "3"})
    assert config.secrets == (wh_app.NEW_SECRET, wh_app.OLD_SECRET)
    assert config.schedule == (1.0, 120.0)
    assert config.timeout == 3.0


def test_deliveries_are_listed_and_replayed_through_the_api(
        app: Conveyor, worker: WorkerProcess) -> None:
    with Receiver({"/down": [500], "/gone": [410]}) as rx, \
            ServerProcess(app.url, "tests.http.wh_serve:api", tokens=TOKENS) as server:
        job = wh_app.add.options(webhook=rx.url("/down")).enqueue(4, 5)
        failed = _finished_delivery(app, job.id)
        listed = httpx.get(f"{server.base}/v1/jobs/{job.id}/webhooks", headers=READ).json()
        assert listed["job_id"] == job.id and listed["enabled"] is True
        [entry] = listed["deliveries"]
        assert entry["id"] == failed.id
        assert entry["url"] == rx.url("/down")
        assert entry["type"] == "job.completed"
        assert entry["state"] == "failed" and entry["outcome"] == "failed"
        assert entry["attempt"] == entry["max_attempts"] == 4
        assert [e["attempt"] for e in entry["errors"]] == [1, 2, 3, 4]
        assert "answered 500" in entry["errors"][0]["message"]
        assert entry["status_code"] is None
        assert entry["message_id"] == rx.requests("/down")[0].headers["webhook-id"]

        # The receiver is fixed; an operator replays the delivery (it is a job).
        rx.scripts["/down"] = [204]
        replay = httpx.post(f"{server.base}/v1/jobs/{failed.id}/retry", headers=ADMIN)
        assert replay.status_code == 200, replay.text

        def delivered() -> bool:
            answer = httpx.get(f"{server.base}/v1/jobs/{job.id}/webhooks", headers=READ)
            outcome: str = answer.json()["deliveries"][0]["outcome"]
            return outcome == "delivered"
        wait_until(delivered, 30, "the replayed delivery")
        entry = httpx.get(f"{server.base}/v1/jobs/{job.id}/webhooks",
                          headers=READ).json()["deliveries"][0]
        assert entry["status_code"] == 204 and entry["state"] == "completed"
        assert {r.headers["webhook-id"] for r in rx.requests("/down")} == {entry["message_id"]}

        gone_job = wh_app.add.options(webhook=rx.url("/gone")).enqueue(1, 1)
        _finished_delivery(app, gone_job.id)
        gone = httpx.get(f"{server.base}/v1/webhooks/gone", headers=READ).json()
        assert [g["url"] for g in gone] == [rx.url("/gone")]

        unknown = httpx.get(f"{server.base}/v1/jobs/no-such-job/webhooks", headers=READ)
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        assert httpx.get(f"{server.base}/v1/jobs/{job.id}/webhooks").status_code == 401


def test_http_enqueue_refuses_a_private_webhook_url_with_422(app: Conveyor) -> None:
    with ServerProcess(app.url, "tests.http.wh_serve:api", tokens=TOKENS,
                       env={"CONVEYOR_WEBHOOK_ALLOW_PRIVATE": "0"}) as server:
        answer = httpx.post(f"{server.base}/v1/tasks/add/jobs", headers=ADMIN, json={
            "kwargs": {"a": 1, "b": 2}, "options": {"webhook": "http://127.0.0.1:9/hook"}})
        assert answer.status_code == 422, answer.text
        assert "public addresses only" in answer.json()["detail"]
        accepted = httpx.post(f"{server.base}/v1/tasks/add/jobs", headers=ADMIN, json={
            "kwargs": {"a": 1, "b": 2}, "options": {"webhook": "https://example.com/hook"}})
        assert accepted.status_code == 202, accepted.text
    assert app.get_job(accepted.json()["id"]).job.meta["webhook"] == "https://example.com/hook"


def test_a_job_that_finished_while_no_leader_followed_is_announced_once(
        app: Conveyor) -> None:
    """The crash window: a job finishes, and nothing enqueues its delivery (here: the only
    worker does no maintenance, like a leader killed at that moment). The next leader
    resumes from the last durable delivery and announces it; later leaders do not again."""
    with Receiver() as rx:
        first = wh_app.add.options(webhook=rx.url("/first")).enqueue(1, 1)
        assert drain(app, ["work"], maintenance=False) == 1
        assert first.refresh().state is JobState.COMPLETED
        assert _deliveries(app, first.id) == []

        leader = WorkerProcess(app.url, app="tests.http.wh_app:app")
        try:
            _finished_delivery(app, first.id)
        finally:
            leader.stop()
        second = wh_app.add.options(webhook=rx.url("/second")).enqueue(2, 2)
        assert drain(app, ["work"], maintenance=False) == 1
        next_leader = WorkerProcess(app.url, app="tests.http.wh_app:app")
        try:
            _finished_delivery(app, second.id)
        finally:
            next_leader.stop()
        assert len(rx.requests("/first")) == 1
        assert len(rx.requests("/second")) == 1
    assert len(_deliveries(app, first.id)) == 1


def test_https_goes_to_the_checked_address_and_still_verifies_the_host_name(
        tmp_path: Path) -> None:
    """The request is pinned to the resolved IP, yet TLS names (SNI) and verifies the
    URL's host: a certificate for the machine's name passes, the same for another fails."""
    name = _loopback_name()
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is missing")

    def certificate(host: str) -> tuple[Path, Path]:
        cert, key = tmp_path / f"{host}.pem", tmp_path / f"{host}.key"
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
                        "-addext", f"subjectAltName=DNS:{host}"], check=True,
                       capture_output=True)
        return cert, key

    async def post_to(cert: Path, key: Path) -> int:
        server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_side.load_cert_chain(cert, key)
        with Receiver() as rx:
            rx.server.socket = server_side.wrap_socket(rx.server.socket, server_side=True)
            trust = ssl.create_default_context(cafile=str(cert))
            response = await webhooks.post(f"https://{name}:{rx.port}/tls", b"{}", {},
                                           allow_private=True, timeout=5, verify=trust)
            assert [r.headers["host"] for r in rx.requests("/tls")] == [f"{name}:{rx.port}"]
            return response.status_code

    assert asyncio.run(post_to(*certificate(name))) == 200
    with pytest.raises(webhooks.WebhookDeliveryError, match="Hostname mismatch"):
        asyncio.run(post_to(*certificate("other.example")))
