"""Schedules as users declare and manage them: validation at declaration, DST, the
runtime API from Python, and upserting declarations by name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.errors import (
    ArgumentsError,
    ConfigurationError,
    ConveyorError,
    InvalidOptionError,
    ScheduleConflictError,
    ScheduleNotFoundError,
)
from conveyor.jobs import JobState
from conveyor.schedules.timing import Timing

NY, LONDON = "America/New_York", "Europe/London"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    a = Conveyor(f"sqlite:///{tmp_path}/s.db")

    @a.task
    def report(user_id: int, days: int = 7) -> int:
        return user_id + days

    yield a
    a.close()


def local_days(timing: Timing, start: dt.datetime, days: int) -> list[dt.datetime]:
    """Every tick in `days` days after `start`, as wall-clock times of the timing's zone."""
    zone = start.tzinfo
    out, at = [], round(start.timestamp() * 1000)
    end = at + days * 86_400_000
    while (tick := timing.next_after(at)) is not None and tick < end:
        out.append(dt.datetime.fromtimestamp(tick / 1000, zone))
        at = tick
    return out


@pytest.mark.parametrize(("zone", "spring", "autumn"), [
    (NY, dt.date(2024, 3, 10), dt.date(2024, 11, 3)),
    (LONDON, dt.date(2024, 3, 31), dt.date(2024, 10, 27)),
])
def test_a_daily_run_at_a_time_dst_skips_or_repeats_runs_once_each_day(
        zone: str, spring: dt.date, autumn: dt.date) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    hour = 2 if zone == NY else 1  # the hour that is skipped and repeated there
    timing = Timing.parse(f"30 {hour} * * *", None, zone)
    for night in (spring, autumn):
        start = dt.datetime.combine(night - dt.timedelta(days=2), dt.time(12), tz)
        runs = local_days(timing, start, 4)
        assert [r.date() for r in runs] == [
            night - dt.timedelta(days=1), night, night + dt.timedelta(days=1),
            night + dt.timedelta(days=2)][:len(runs)]
        assert len(runs) == 4 and len({r.date() for r in runs}) == 4


def test_aliases_seconds_and_intervals() -> None:
    daily = Timing.parse("@daily", None, "UTC")
    assert daily.next_after(0) == 86_400_000
    seconds = Timing.parse("*/10 * * * * *", None, None)
    assert seconds.next_after(1_000) == 10_000
    every = Timing.parse(None, "30s", None)
    assert every.next_after(29_999) == 30_000 and every.next_after(30_000) == 60_000
    assert every.expression == "every 30s"


@pytest.mark.parametrize(("options", "message"), [
    ({"cron": "61 * * * *"}, "bad cron expression"),
    ({"cron": "* * *"}, "bad cron expression"),
    ({"cron": "0 9 * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"every": "soon"}, "not a duration"),
    ({"every": "10ms"}, "at least 100ms"),
    ({"cron": "0 9 * * *", "every": "1s"}, "exactly one of"),
    ({"every": "1s", "misfire": "later"}, "misfire must be one of"),
    ({"every": "1s", "overlap": "maybe"}, "overlap must be one of"),
    ({"every": "1s", "catch_up": 0}, "catch_up"),
    ({"every": "1s", "start": dt.datetime(2030, 1, 1)}, "timezone-aware"),
    ({"every": "1s", "jitter": "10s", "expires": "5s"}, "longer than jitter"),
])
def test_bad_declarations_fail_at_once_and_store_nothing(app: Conveyor, options: dict[str, Any],
                                                         message: str) -> None:
    task = app.get_task("report")
    with pytest.raises(InvalidOptionError, match=message):
        app.schedule("bad", task, kwargs={"user_id": 1}, **options)
    with pytest.raises(InvalidOptionError, match=message):
        app.schedules.create("bad", "report", kwargs={"user_id": 1}, **options)
    assert app.schedules.declared == {} and app.schedules.list() == []


def test_arguments_that_do_not_fit_the_task_fail_at_declaration(app: Conveyor) -> None:
    with pytest.raises(ArgumentsError):
        app.schedule("bad", "report", every="1s", kwargs={"nobody": 1})
    with pytest.raises(ArgumentsError):

        @app.cron("0 9 * * *")
        @app.task
        def needs_an_argument(x: int) -> None: ...

    with pytest.raises(ArgumentsError):
        app.schedules.create("bad", "report", every="1s")
    with pytest.raises(ConveyorError, match="unknown task"):
        app.schedules.create("bad", "nothing", every="1s")
    assert app.schedules.list() == []


def test_stacked_crons_need_names(app: Conveyor) -> None:
    @app.cron("0 9 * * *", name="morning", tz="Europe/Lisbon", kwargs={"user_id": 1})
    @app.cron("0 18 * * *", kwargs={"user_id": 2})
    @app.task
    def digest(user_id: int) -> None: ...

    assert set(app.schedules.declared) == {"digest", "morning"}
    with pytest.raises(ConfigurationError, match="declared already"):
        app.cron("0 7 * * *", kwargs={"user_id": 3})(digest)


def test_runtime_api_create_pause_resume_trigger_update_delete(app: Conveyor) -> None:
    created = app.schedules.create("nightly", "report", cron="0 3 * * *", tz=NY,
                                   kwargs={"user_id": 7})
    assert created.origin == "api" and created.next_run_at is not None
    assert (created.expression, created.tz, created.kwargs) == ("0 3 * * *", NY, {"user_id": 7})
    with pytest.raises(ScheduleConflictError):
        app.schedules.create("nightly", "report", every="1s", kwargs={"user_id": 1})
    paused = app.schedules.pause("nightly")
    assert paused.paused and paused.next_run_at is None
    resumed = app.schedules.resume("nightly")
    assert not resumed.paused and resumed.next_run_at == created.next_run_at
    handle = app.schedules.trigger("nightly")
    job = handle.job
    assert job.state is JobState.WAITING and job.kwargs == {"user_id": 7}
    assert job.meta["schedule"] == "nightly" and "tick" in job.meta
    after = app.schedules.get("nightly")
    assert after.last_job_id == job.id and after.next_run_at == created.next_run_at
    updated = app.schedules.update("nightly", every="10m", kwargs={"user_id": 8})
    assert updated.expression == "every 10m" and updated.kwargs == {"user_id": 8}
    assert updated.tz == "UTC" and updated.next_run_at != created.next_run_at
    with pytest.raises(InvalidOptionError):
        app.schedules.update("nightly", overlap="never")
    assert app.schedules.get("nightly").expression == "every 10m"
    app.schedules.delete("nightly")
    for call in (app.schedules.delete, app.schedules.get, app.schedules.pause,
                 app.schedules.trigger):
        with pytest.raises(ScheduleNotFoundError):
            call("nightly")


def test_declarations_are_upserted_by_name_and_removed_ones_retired(app: Conveyor) -> None:
    app.schedule("a", "report", every="1m", kwargs={"user_id": 1})
    app.schedule("b", "report", every="1m", kwargs={"user_id": 2})
    app.schedules.create("runtime", "report", every="1h", kwargs={"user_id": 3})
    report = app.schedules.store_declared()
    assert (sorted(report.created), report.updated, report.retired) == (["a", "b"], [], [])
    before = app.schedules.get("a")
    app.schedules.pause("b")
    assert app.schedules.store_declared() == type(report)([], [], [])  # nothing changed
    # the next deploy: a's expression changes, b is gone
    app.schedules.declared.clear()
    app.schedule("a", "report", cron="*/5 * * * *", kwargs={"user_id": 1})
    report = app.schedules.store_declared()
    assert (report.created, report.updated, report.retired) == ([], ["a"], ["b"])
    names = [s.name for s in app.schedules.list()]
    assert names == ["a", "runtime"]
    changed = app.schedules.get("a")
    assert changed.expression == "*/5 * * * *" and before.expression == "every 1m"
    assert changed.next_run_at is not None and changed.next_run_at % 300_000 == 0


async def test_metrics_report_each_schedule(app: Conveyor) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from conveyor.metrics import Metrics

    await app.schedules.acreate("hourly", "report", cron="@hourly", kwargs={"user_id": 1})
    await app.schedules.atrigger("hourly")
    await app.schedules.apause("hourly")
    metrics = app.install(Metrics())
    text = (await metrics.render()).decode()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}
    hourly = (("schedule", "hourly"),)
    assert found[("conveyor_schedule_ticks_enqueued_total", hourly)] == 1
    assert found[("conveyor_schedule_interval_seconds", hourly)] == 3600
    assert found[("conveyor_schedule_paused", hourly)] == 1
    assert found[("conveyor_schedule_seconds_since_success", hourly)] >= 0
    assert found[("conveyor_schedule_ticks_skipped_total",
                  (("reason", "overlap"), ("schedule", "hourly")))] == 0


def test_another_apps_code_schedules_are_not_retired(app: Conveyor, tmp_path: Path) -> None:
    other = Conveyor(app.url)

    @other.task
    def send(to: str) -> None: ...

    other.schedule("newsletter", send, cron="@weekly", kwargs={"to": "all"})
    other.schedules.store_declared()
    app.schedule("mine", "report", every="1h", kwargs={"user_id": 1})
    report = app.schedules.store_declared()
    assert report.retired == []
    assert [s.name for s in app.schedules.list()] == ["mine", "newsletter"]
    other.close()
