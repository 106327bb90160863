"""The dashboard's live streams frame text safely: whatever a job's fields hold (a carriage
return in an error message, a log line, a progress value), a browser reading the stream
sees only the events and ids the server meant to send."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor import Conveyor
from conveyor.dashboard.streams import message
from conveyor.testing import adrain
from tests.dashboard import tasks
from tests.dashboard.conftest import Browserish

INJECTION = "x\rid: 999\rretry: 1\revent: pwned\rdata: <b>owned</b>\r\n\ry"


@dataclass
class SseEvent:
    event: str = "message"
    data: list[str] = field(default_factory=list)
    id: str | None = None


@dataclass
class Parsed:
    events: list[SseEvent]
    retries: list[str]
    ids: list[str]


def parse_sse(text: str) -> Parsed:
    """What a browser reads from a stream, per the HTML spec's parsing rules: lines end at
    CRLF, CR or LF; a blank line dispatches the event."""
    events: list[SseEvent] = []
    retries: list[str] = []
    ids: list[str] = []
    current = SseEvent()
    for line in re.split(r"\r\n|\r|\n", text):
        if not line:
            if current.data:
                events.append(current)
            current = SseEvent()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            current.event = value
        elif name == "data":
            current.data.append(value)
        elif name == "id":
            current.id = value
            ids.append(value)
        elif name == "retry":
            retries.append(value)
    return Parsed(events, retries, ids)


def test_a_message_with_every_kind_of_line_break_is_one_event_with_its_text() -> None:
    parsed = parse_sse(message("job-errors", INJECTION, 7))
    assert len(parsed.events) == 1
    only = parsed.events[0]
    assert only.event == "job-errors" and only.id == "7" and parsed.ids == ["7"]
    assert parsed.retries == []
    assert "\n".join(only.data) == INJECTION.replace("\r\n", "\n").replace("\r", "\n")


async def test_a_failed_jobs_live_stream_carries_no_field_from_its_error_message(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = tasks.refund.enqueue(customer=INJECTION).id
    await adrain(conveyor_app, ["billing"])
    tab = open_client()
    await tab.login("ana", "ana-password")
    stream = await tab.get(f"/live/jobs/{job_id}")  # the job is final: the stream ends
    assert stream.status_code == 200
    parsed = parse_sse(stream.text)
    names = [e.event for e in parsed.events]
    assert "pwned" not in names and names[-1] == "end"
    assert "999" not in parsed.ids
    assert parsed.retries == ["2000"]  # the server's own, once
    errors = next(e for e in parsed.events if e.event == "job-errors")
    assert "id: 999" in "\n".join(errors.data)  # the text is there, as data


def test_the_apis_event_frames_carry_text_as_escaped_json() -> None:
    """The API's streams (GET /v1/jobs/{id}/events) send data as JSON, whose strings
    escape every control character: a log line cannot start a field either."""
    from conveyor.http.events import _event_frame
    from conveyor.jobs import Event

    line = {"message": INJECTION}
    frame = _event_frame(Event(id=5, job_id="j", queue="q", kind="log", data=line, at=0))
    parsed = parse_sse(frame.decode())
    assert [(e.event, e.id) for e in parsed.events] == [("log", "5")]
    assert parsed.ids == ["5"] and parsed.retries == []
    assert json.loads("\n".join(parsed.events[0].data))["data"] == line
