"""Tracebacks on the job page: the task's own frames show in full, conveyor's and the
standard library's are folded away, and lines wrap rather than run off the right edge."""

from __future__ import annotations

import re
from collections.abc import Callable

from conveyor import Conveyor
from conveyor.dashboard.tracebacks import blocks
from conveyor.testing import adrain
from tests.dashboard import tasks
from tests.dashboard.conftest import VENDOR, Browserish


def test_internal_frames_are_folded_and_the_tasks_frames_kept() -> None:
    import conveyor

    root = conveyor.__file__.rsplit("/", 1)[0]
    text = (f'Traceback (most recent call last):\n'
            f'  File "{root}/worker/worker.py", line 440, in _run\n'
            f'    result = await self._call(job)\n'
            f'  File "/usr/lib/python3.11/asyncio/tasks.py", line 479, in wait_for\n'
            f'    return fut.result()\n'
            f'  File "/srv/app/.venv/lib/python3.11/site-packages/httpx/_api.py", line 9, in get\n'
            f'    raise HTTPError()\n'
            f'  File "/srv/app/jobs.py", line 12, in charge\n'
            f'    raise PaymentDeclined("card declined")\n'
            f'    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n'
            f'jobs.PaymentDeclined: card declined\n')
    found = blocks(text)
    assert [(b.kind, b.count) for b in found] == [
        ("text", 0), ("folded", 2), ("frames", 2), ("text", 0)]
    assert "httpx/_api.py" in found[2].text and "^^^" in found[2].text
    assert found[3].text == "jobs.PaymentDeclined: card declined"
    assert "".join(b.text + "\n" for b in found) == text  # nothing lost


async def test_the_job_page_shows_the_tasks_frames_first_and_wraps(
        conveyor_app: Conveyor, open_client: Callable[..., Browserish]) -> None:
    job_id = tasks.refund.enqueue(customer="acme").id
    await adrain(conveyor_app, ["billing"])
    tab = open_client()
    await tab.login("ana", "ana-password")
    page = (await tab.get(f"/jobs/{job_id}")).text
    box = re.search(r'data-testid="traceback">(.*?)</div>', page, re.S)
    assert box, "no traceback on the page"
    visible = re.sub(r"<details.*?</details>", "", box.group(1), flags=re.S)
    assert "tests/dashboard/tasks.py" in visible and "no payment to refund" in visible
    assert "conveyor/worker" not in visible  # folded, still one click away
    assert re.search(r"frames? inside conveyor and Python", box.group(1))
    css = (VENDOR.parent / "dashboard.css").read_text()
    assert re.search(r"pre\.traceback \{[^}]*white-space: pre-wrap", css)
