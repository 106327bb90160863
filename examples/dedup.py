"""The README's "Dedup modes and expiry": one job per user until it finishes, a burst of
edits debounced into one run with the last text, a throttle, and a job that expires.
`python -m examples.dedup` in an empty folder writes conveyor.db there."""

from __future__ import annotations

from conveyor import Conveyor, Dedup

app = Conveyor()  # $CONVEYOR_URL, else sqlite:///conveyor.db


@app.task(dedup=Dedup("user:{user_id}"))                # one job per user until it finishes
def sync_account(user_id: int) -> None: ...


@app.task(dedup=Dedup("{doc_id}", debounce="2s", max_wait="10s", replace=True))
def reindex(doc_id: str, text: str) -> None: ...        # a burst -> one run, the last text


@app.task(expires="10m")                                # not started within 10 min: cancelled
def send_reminder(user_id: int) -> None: ...


first = sync_account.enqueue(user_id=1)
again = sync_account.enqueue(user_id=1)
assert not again.created and again.folded_into == first.id

for text in ("h", "he", "hello"):
    edit = reindex.enqueue(doc_id="d1", text=text)      # due 2 s after the last edit
assert edit.refresh().kwargs["text"] == "hello"

hourly = send_reminder.options(dedup=Dedup("reminder:{user_id}", ttl="1h"))
assert hourly.enqueue(user_id=1).created and not hourly.enqueue(user_id=1).created
