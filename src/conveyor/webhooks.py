"""Signed webhooks: when a job finishes, conveyor POSTs its outcome to a URL, signed per the
Standard Webhooks specification, and retries with growing delays until the receiver
answers 2xx.

    from conveyor import webhooks
    webhooks.enable(app, secrets=["whsec_..."],              # or CONVEYOR_WEBHOOK_SECRETS
                    queues={"reports": "https://example.com/hooks/reports"})
    generate_report.options(webhook="https://example.com/hooks/42").enqueue(user_id=1)

`enable` runs where the app is defined, so producers, the HTTP service and workers all see
it. A job's own URL (the `webhook` option, kept in ``job.meta["webhook"]``) wins over its
queue's. Completed, failed and cancelled jobs are announced (``job.completed`` ...), so a
caller waiting for a webhook never waits forever.

Who notices "job finished". Not the worker loop: the worker that holds the maintenance
lock follows the backend's event stream (a leader duty, run by its keeper thread). For
every final event of a job with a URL it enqueues a *delivery job* on the internal queue
``conveyor.webhooks`` with the key ``webhook:<job id>:<event id>``, in event order and one
backend call per page. A crash anywhere loses nothing: the final state and its event are
one atomic backend write, and a new leader resumes from the highest event id among the
newest delivery jobs (durable) and replays the events after it; replaying is harmless
because a keyed enqueue returns the existing delivery instead of adding one. Limit: a
follower that stays down longer than event retention (24 h by default) misses events.

Deliveries are ordinary jobs (task ``conveyor.webhook``): their state, attempts and errors
show through the API (``GET /v1/jobs/{id}/webhooks``), and retrying one replays it. Each
attempt is signed afresh (``webhook-id`` stays the same, the receiver's idempotency key;
``webhook-timestamp`` is the attempt's time; ``webhook-signature`` carries one ``v1,``
signature per configured secret, for rotation). Redirects are not followed.

410 Gone disables the URL. The delivery that got it fails (``EndpointGoneError``) and
conveyor stores a *gone marker*: a job of task ``conveyor.webhook_gone`` on
``conveyor.webhooks``, delayed for 50 years, carrying the URL. Every later delivery to the
URL fails at once without a request while the marker is delayed; remove (or promote) the
marker job to enable the URL again.

SSRF. A URL whose host is a non-public address (loopback, private, link-local, the
169.254.169.254 metadata service, multicast, reserved, unspecified) is refused unless
`allow_private`: at enqueue for literal addresses and ``localhost`` (InvalidOptionError,
so HTTP answers 422), and for names after DNS resolution at delivery, where a refusal ends
the delivery failed (``WebhookRefusedError``, visible, not retried). The request then goes
to the very address that was checked (the Host header and TLS name stay the URL's), so a
second DNS answer cannot point it elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets as secrets_mod
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import extras

try:
    import httpx
except ModuleNotFoundError as exc:
    extras.missing("conveyor.webhooks", "server", exc)

from . import backoff as backoff_mod
from .backends.base import Backend, JobFilter, NewJob
from .errors import ConfigurationError, InvalidOptionError
from .flows import META as FLOW_META
from .flows.view import flow_data
from .ids import new_job_id
from .jobs import Event, Job, JobState
from .outcomes import NonRetryableError
from .plugins import LeaderDuty, Plugin
from .serialization import dumps
from .stream import EventStream

if TYPE_CHECKING:
    from .app import Conveyor

log = logging.getLogger("conveyor.webhooks")

QUEUE = "conveyor.webhooks"
DELIVERY_TASK = "conveyor.webhook"
GONE_TASK = "conveyor.webhook_gone"
ANNOUNCED = frozenset({JobState.COMPLETED.value, JobState.FAILED.value,
                       JobState.CANCELLED.value})
# Standard Webhooks' suggested pace: about a day and a half from the first to the last try.
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
GONE_FOR_MS = 50 * 365 * 24 * 3600 * 1000
MAX_URL_LENGTH = 2048
_PAGE = 500  # events read per backend call
_BUDGET = 0.3  # seconds of event following per keeper beat (it shares the lease thread)


class WebhookRefusedError(NonRetryableError):
    """The URL points at a non-public address (SSRF protection); no request was sent."""


class EndpointGoneError(NonRetryableError):
    """The receiver answered 410 Gone, now or before: deliveries to the URL are disabled."""


class WebhookDeliveryError(Exception):
    """The receiver did not answer 2xx (or could not be reached); the delivery retries."""


# -- configuration --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    """How an app delivers webhooks. `from_env` reads:

    CONVEYOR_WEBHOOK_SECRETS        "whsec_...,whsec_..."  signing secrets, newest first
    CONVEYOR_WEBHOOK_ALLOW_PRIVATE  "1": allow loopback/private addresses (tests, intranets)
    CONVEYOR_WEBHOOK_QUEUES         "reports=https://...,emails=https://..."  per-queue URLs
    CONVEYOR_WEBHOOK_SCHEDULE       "5s,5m,30m,2h": delays between attempts
    CONVEYOR_WEBHOOK_TIMEOUT        seconds one request may take (default 10)
    """

    secrets: tuple[str, ...]
    allow_private: bool = False
    queues: Mapping[str, str] = dataclasses.field(default_factory=dict)
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ConfigurationError(
                "webhooks need a signing secret: set CONVEYOR_WEBHOOK_SECRETS=whsec_... "
                "(conveyor.webhooks.new_secret() makes one)")
        for secret in self.secrets:
            secret_bytes(secret)
        for queue, url in self.queues.items():
            check_url(url, allow_private=self.allow_private, what=f"webhook URL of {queue}")
        if not self.schedule or any(d < 0 for d in self.schedule):
            raise ConfigurationError("the webhook schedule needs one or more delays >= 0")
        if self.timeout <= 0:
            raise ConfigurationError("the webhook timeout must be > 0 seconds")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> WebhookConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "secrets": _split(env.get("CONVEYOR_WEBHOOK_SECRETS", "")),
            "allow_private": env.get("CONVEYOR_WEBHOOK_ALLOW_PRIVATE", "") in {"1", "true",
                                                                              "yes"},
        }
        queues = {}
        for item in _split(env.get("CONVEYOR_WEBHOOK_QUEUES", "")):
            queue, sep, url = item.partition("=")
            if not sep:
                raise ConfigurationError(f"bad CONVEYOR_WEBHOOK_QUEUES entry {item!r}: use "
                                         "queue=https://...")
            queues[queue.strip()] = url.strip()
        values["queues"] = queues
        if env.get("CONVEYOR_WEBHOOK_SCHEDULE"):
            values["schedule"] = env["CONVEYOR_WEBHOOK_SCHEDULE"]
        if env.get("CONVEYOR_WEBHOOK_TIMEOUT"):
            values["timeout"] = env["CONVEYOR_WEBHOOK_TIMEOUT"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["secrets"], str):
            values["secrets"] = _split(values["secrets"])
        values["secrets"] = tuple(values["secrets"])
        values["schedule"] = _schedule(values.get("schedule", DEFAULT_SCHEDULE))
        if "timeout" in values:
            values["timeout"] = backoff_mod.parse_duration(values["timeout"], "webhook timeout")
        return cls(**values)


def _split(spec: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in spec.split(",") if part.strip())


def _schedule(spec: Any) -> tuple[float, ...]:
    if isinstance(spec, str):
        spec = spec.split(",")
    try:
        return tuple(backoff_mod.parse_duration(d, "webhook schedule delay") for d in spec)
    except InvalidOptionError as exc:
        raise ConfigurationError(str(exc)) from None


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form ``whsec_<base64 of 32 bytes>``."""
    return "whsec_" + base64.b64encode(secrets_mod.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    if not secret.startswith("whsec_"):
        raise ConfigurationError("webhook secrets look like whsec_<base64>")
    try:
        raw = base64.b64decode(secret[len("whsec_"):], validate=True)
    except ValueError:
        raise ConfigurationError("a webhook secret is not valid base64 after whsec_") from None
    if len(raw) < 16:
        raise ConfigurationError("a webhook secret must hold at least 16 bytes")
    return raw


# -- signing ----------------------------------------------------------------------------------
def sign(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` per
    secret, space-separated, so receivers still holding an older secret keep verifying."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_bytes(s), signed, hashlib.sha256).digest())
        .decode() for s in secrets)


def signed_headers(config: WebhookConfig, message_id: str, body: bytes,
                   timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json", "user-agent": "conveyor-webhooks",
            "webhook-id": message_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign(config.secrets, message_id, ts, body)}


# -- SSRF -------------------------------------------------------------------------------------
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, by the form that carries them: a
    packet to it ends up at them (a mapped socket, a 6to4 or Teredo relay, a NAT64)."""
    if ip.ipv4_mapped is not None:
        return [("IPv4-mapped", ip.ipv4_mapped)]
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        return [("Teredo", address) for address in ip.teredo]
    if ip in _NAT64:
        return [("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))]
    return []


def address_problem(address: str) -> str | None:
    """Why a webhook must not connect to this IP address, or None if it is public.

    An IPv6 address that embeds IPv4 ones is judged by them, whatever the Python
    version's ipaddress tables say of its prefix."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        for form, inner in embedded:
            problem = _ip_problem(inner)
            if problem is not None:
                return f"{problem} ({inner} via {form})"
        if embedded:
            return None
    return _ip_problem(ip)


def _ip_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives at 169.254.169.254)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a private address"
    return None


def check_url(url: Any, *, allow_private: bool, what: str = "webhook URL") -> str:
    """The checks that need no DNS: scheme, host, length, and literal addresses."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidOptionError(f"{what} must be an http(s) URL of at most "
                                 f"{MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise InvalidOptionError(f"{what} {url!r} is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidOptionError(f"{what} {url!r} must be an absolute http:// or https:// URL")
    if allow_private:
        return url
    host = parsed.host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        raise InvalidOptionError(f"{what} {url!r} points at this machine (localhost); "
                                 "webhooks go to public addresses only")
    try:
        problem = address_problem(host)
    except ValueError:
        return url  # a name: checked after resolution, at delivery
    if problem:
        raise InvalidOptionError(f"{what} {url!r} points at {problem}; webhooks go to public "
                                 "addresses only (allow_private / "
                                 "CONVEYOR_WEBHOOK_ALLOW_PRIVATE=1 lifts this)")
    return url


async def post(url: str, body: bytes, headers: Mapping[str, str], *, allow_private: bool,
               timeout: float, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    """POST to the address the URL's host resolves to, after checking that address.

    The connection goes to the checked IP; TLS still names and verifies the URL's host.
    """
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(parsed.host, port,
                                                             type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookDeliveryError(f"cannot resolve {parsed.host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise WebhookDeliveryError(f"{parsed.host} has no address")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise WebhookRefusedError(f"{parsed.host} resolves to {address}, {problem}; "
                                          "webhooks go to public addresses only")
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    request_headers = {**headers, "host": parsed.netloc.decode("ascii")}
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                                 verify=verify) as client:
        for number, address in enumerate(addresses, 1):
            pinned = parsed.copy_with(host=address.split("%", 1)[0])
            try:
                return await client.post(pinned, content=body, headers=request_headers,
                                         extensions=extensions)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if number == len(addresses):  # else try the host's next address
                    raise WebhookDeliveryError(
                        f"POST {url} failed: cannot connect to {parsed.host} "
                        f"({', '.join(addresses)}): {exc}") from None
            except httpx.HTTPError as exc:
                raise WebhookDeliveryError(
                    f"POST {url} failed: {type(exc).__name__}: {exc}") from None
    raise AssertionError("unreachable")


# -- what is sent -----------------------------------------------------------------------------
def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def payload(job: Job, event: Event) -> dict[str, Any]:
    """The body of the announcement of `event` (a final state of `job`)."""
    error = None
    if event.kind != JobState.COMPLETED.value and job.last_error is not None:
        # no traceback: it is internal detail, and the receiver may be a third party
        error = {k: job.last_error.get(k) for k in ("type", "message", "attempt")}
    return {
        "type": f"job.{event.kind}",
        "timestamp": _iso(event.at),
        "data": {
            "id": job.id, "queue": job.queue, "task": job.task, "state": event.kind,
            "attempt": event.data.get("attempt", job.attempt),
            "result": job.result if event.kind == JobState.COMPLETED.value else None,
            "error": error, "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at or event.at),
        },
    }


def delivery_key(job_id: str, event_id: int) -> str:
    return f"webhook:{job_id}:{event_id}"


def delivery_outcome(job: Job) -> str | None:
    """How a delivery job's last step reads in metrics: delivered, retrying, failed, gone,
    refused (None while it has not tried yet)."""
    if job.state is JobState.COMPLETED:
        return "delivered"
    error_type = str((job.last_error or {}).get("type", ""))
    if job.state is JobState.FAILED:
        if error_type.endswith("EndpointGoneError"):
            return "gone"
        if error_type.endswith("WebhookRefusedError"):
            return "refused"
        return "failed"
    return "retrying" if job.errors else None


# -- the app's webhooks -----------------------------------------------------------------------


def enable(app: Conveyor, *, secrets: Sequence[str] | str | None = None,
           allow_private: bool | None = None, queues: Mapping[str, str] | None = None,
           schedule: Any = None, timeout: float | str | None = None) -> Webhooks:
    """Turn webhooks on for `app` (arguments override CONVEYOR_WEBHOOK_* variables).

    Installs the `Webhooks` plugin: the delivery task on queue ``conveyor.webhooks``
    (workers of the app consume it unless given an explicit queue list without it), the
    ``webhook`` enqueue option, the event follower as a leader duty and the deliveries
    route. Calling it again replaces the configuration.
    """
    config = WebhookConfig.from_env(secrets=secrets, allow_private=allow_private,
                                    queues=queues, schedule=schedule, timeout=timeout)
    hooks = webhooks_of(app)
    if hooks is None:
        return app.install(Webhooks(config))
    hooks.reconfigure(config)
    return hooks


def webhooks_of(app: Conveyor) -> Webhooks | None:
    plugin = app.plugin(Webhooks.name)
    return plugin if isinstance(plugin, Webhooks) else None


class Webhooks(Plugin):
    """The webhook plugin of one app: its configuration, the follower and the tasks."""

    name = "conveyor.webhooks"
    options = ("webhook",)

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.follower = EventFollower(self)

    def setup(self, app: Conveyor) -> None:
        self.app = app
        self._register()

    def check_option(self, name: str, value: Any) -> str:
        """The `webhook` enqueue option (``task.options(webhook=...)``): a public URL."""
        return check_url(value, allow_private=self.config.allow_private)

    def leader_duties(self) -> Sequence[LeaderDuty]:
        return [self.follower]

    def router(self) -> Any:
        from .http.webhooks import router

        return router

    def reconfigure(self, config: WebhookConfig) -> None:
        self.config = config
        self._register()

    def url_for(self, job: Job) -> str | None:
        if job.queue == QUEUE:
            return None  # deliveries are never announced themselves
        own = job.meta.get("webhook") if isinstance(job.meta, dict) else None
        return own if isinstance(own, str) else self.config.queues.get(job.queue)

    def _register(self) -> None:
        config = self.config
        self.app.tasks.pop(DELIVERY_TASK, None)
        self.app.task(name=DELIVERY_TASK, queue=QUEUE, attempts=len(config.schedule) + 1,
                      backoff=list(config.schedule), timeout=config.timeout + 5)(self.deliver)
        if GONE_TASK not in self.app.tasks:
            self.app.task(name=GONE_TASK, queue=QUEUE, attempts=1)(_gone_marker_promoted)

    def delivery(self, job: Job, event: Event) -> NewJob:
        url = self.url_for(job)
        assert url is not None
        kwargs = {"url": url, "payload": payload(job, event),
                  "message_id": f"msg_{job.id}_{event.id}", "job_id": job.id,
                  "event_id": event.id}
        return NewJob(
            id=new_job_id(), queue=QUEUE, task=DELIVERY_TASK, args_json="[]",
            kwargs_json=dumps(kwargs), key=delivery_key(job.id, event.id),
            max_attempts=len(self.config.schedule) + 1, timeout=self.config.timeout + 5,
            backoff_json=dumps({"type": "schedule", "delays": list(self.config.schedule)}),
            meta_json=dumps({"webhook_for": job.id, "event_id": event.id}),
        )

    def flow_delivery(self, flow_id: str, jobs: Sequence[Job], event: Event,
                      url: str) -> NewJob:
        kwargs = {"url": url, "payload": flow_payload(flow_id, jobs, event),
                  "message_id": f"msg_flow_{flow_id}", "job_id": flow_id,
                  "event_id": event.id}
        return NewJob(
            id=new_job_id(), queue=QUEUE, task=DELIVERY_TASK, args_json="[]",
            kwargs_json=dumps(kwargs), key=f"webhook:flow:{flow_id}",
            max_attempts=len(self.config.schedule) + 1, timeout=self.config.timeout + 5,
            backoff_json=dumps({"type": "schedule", "delays": list(self.config.schedule)}),
            meta_json=dumps({"webhook_for": flow_id, "event_id": event.id}),
        )

    async def deliver(self, url: str, payload: dict[str, Any], message_id: str, job_id: str,
                      event_id: int) -> dict[str, Any]:
        """One delivery attempt (the body of task ``conveyor.webhook``)."""
        await self.app.aopen()
        backend = self.app.backend
        gone = await gone_markers(backend)
        if url in gone:
            raise EndpointGoneError(
                f"{url} answered 410 Gone earlier; deliveries to it are disabled "
                f"(remove job {gone[url].id} to enable it again)")
        body = dumps(payload).encode()
        headers = signed_headers(self.config, message_id, body)
        response = await post(url, body, headers, allow_private=self.config.allow_private,
                              timeout=self.config.timeout)
        status = response.status_code
        if 200 <= status < 300:
            return {"url": url, "status": status, "message_id": message_id}
        if status == 410:
            marker = await mark_gone(backend, url)
            raise EndpointGoneError(f"{url} answered 410 Gone; deliveries to it are disabled "
                                    f"(remove job {marker} to enable it again)")
        hint = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise WebhookDeliveryError(f"{url} answered {status}{hint}: "
                                   f"{response.text[:200]!r}")

    async def deliveries(self, job_id: str) -> list[Job]:
        """The delivery jobs announcing `job_id`, newest first."""
        await self.app.aopen()
        return await list_deliveries(self.app.backend, job_id)


async def list_deliveries(backend: Backend, job_id: str) -> list[Job]:
    page = await backend.list_jobs(JobFilter(queue=QUEUE, task=DELIVERY_TASK, search=job_id),
                                   limit=100)
    return [j for j in page.jobs if j.meta.get("webhook_for") == job_id]


async def _gone_marker_promoted(url: str) -> dict[str, str]:
    """Runs only if an operator promotes a gone marker: that enables the URL again."""
    return {"url": url, "enabled": "again"}


async def gone_markers(backend: Backend) -> dict[str, Job]:
    page = await backend.list_jobs(JobFilter(queue=QUEUE, states=(JobState.DELAYED,),
                                             task=GONE_TASK), limit=1000)
    return {str(j.kwargs.get("url")): j for j in page.jobs}


async def mark_gone(backend: Backend, url: str) -> str:
    digest = hashlib.sha256(url.encode()).hexdigest()[:40]
    stored = await backend.enqueue([NewJob(
        id=new_job_id(), queue=QUEUE, task=GONE_TASK, args_json="[]",
        kwargs_json=dumps({"url": url}), key=f"webhook-gone:{digest}", delay_ms=GONE_FOR_MS,
        max_attempts=1, meta_json=dumps({"gone": url}))])
    log.warning("webhook URL %s answered 410 Gone: deliveries to it are disabled", url)
    return stored[0].job.id


def _flow_hook(job: Job) -> str | None:
    """The URL a flow's job carries for the end of its flow (``flow.notify(url)``)."""
    entry = job.meta.get(FLOW_META) if isinstance(job.meta, dict) else None
    url = entry.get("webhook") if isinstance(entry, dict) else None
    return url if isinstance(url, str) else None


def flow_payload(flow_id: str, jobs: Sequence[Job], event: Event) -> dict[str, Any]:
    """The body announcing the end of a flow: its state and every job's."""
    data = flow_data(flow_id, jobs)
    return {"type": f"flow.{data['state']}", "timestamp": _iso(event.at), "data": data}


class EventFollower:
    """The leader duty: turns final events of jobs with a URL into delivery jobs."""

    __name__ = "webhook event follower"

    def __init__(self, hooks: Webhooks) -> None:
        self.hooks = hooks
        self.cursor: int | None = None
        self.enqueued = 0

    async def __call__(self, backend: Backend) -> None:
        if self.cursor is None:
            self.cursor = await self.resume_point(backend)
        stream = EventStream(backend, page=_PAGE)
        async for events in stream.follow(self.cursor, budget=_BUDGET):
            await self.handle(stream, events)
            self.cursor = events[-1].id

    @staticmethod
    async def resume_point(backend: Backend) -> int:
        """The highest event id any stored delivery announces: every event up to it was
        handled, since deliveries are enqueued in event order."""
        page = await backend.list_jobs(JobFilter(queue=QUEUE, task=DELIVERY_TASK), limit=50)
        seen = [int(j.meta.get("event_id", 0)) for j in page.jobs]
        return max(seen, default=0)

    async def handle(self, stream: EventStream, events: Sequence[Event]) -> None:
        final = [e for e in events if e.kind in ANNOUNCED and e.queue != QUEUE]
        if not final:
            return
        jobs = await stream.jobs_of(final)
        new = [self.hooks.delivery(jobs[e.job_id], e) for e in final
               if e.job_id in jobs and self.hooks.url_for(jobs[e.job_id])]
        new += await self.flows_finished(stream.backend, [
            (jobs[e.job_id], e) for e in final if e.job_id in jobs
            and _flow_hook(jobs[e.job_id])])
        if new:
            stored = await stream.backend.enqueue(new)
            self.enqueued += sum(1 for s in stored if s.created)

    async def flows_finished(self, backend: Backend,
                             ended: Sequence[tuple[Job, Event]]) -> list[NewJob]:
        """One delivery per flow whose last unfinished job just ended, keyed by the flow
        (``webhook:flow:<id>``): a replay, or two jobs ending at once, store it once."""
        out: dict[str, NewJob] = {}
        for job, event in ended:
            flow_id = job.flow_id
            if flow_id is None or flow_id in out:
                continue
            members = await backend.flow_jobs(flow_id)
            if members and all(m.is_final for m in members):
                out[flow_id] = self.hooks.flow_delivery(flow_id, members, event,
                                                        _flow_hook(job) or "")
        return list(out.values())
