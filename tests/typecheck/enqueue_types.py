"""Checked by tests/test_typing.py with mypy: enqueue keeps the task's parameter types."""

from conveyor import Conveyor, JobHandle

app = Conveyor("sqlite:///unused.db")


@app.task
async def report(user_id: int, days: int = 30) -> dict[str, int]:
    return {"user_id": user_id}


@app.task(queue="emails")
def email(to: str) -> bool:
    return True


ok: JobHandle[dict[str, int]] = report.enqueue(1, days=90)
ok_email: JobHandle[bool] = email.options(key="k").enqueue("ana@example.com")
bad_type = report.enqueue("one")  # E: wrong type
bad_name = report.enqueue(1, weeks=2)  # E: unknown parameter
missing = email.enqueue()  # E: missing argument
