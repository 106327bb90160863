"""The README's "Define tasks, enqueue jobs", second half: enqueue, run a worker in this
process, read the results. `python -m examples.enqueue` in an empty folder writes
conveyor.db there."""

from __future__ import annotations

from conveyor.testing import drain
from examples.tasks import app, generate_report, render

job = generate_report.enqueue(user_id=1, days=90)      # validated against the signature
keyed = generate_report.options(key="report:1", priority=10).enqueue(user_id=1)
again = generate_report.options(key="report:1", priority=10).enqueue(user_id=1)
assert again.id == keyed.id and not again.created      # the key made it one job
app.enqueue_many([render.prepare(seed=i) for i in range(10_000)])   # one backend call

drain(app, ["reports"])           # a worker in this process; in production: conveyor worker
print(job.refresh().state)        # completed
print(job.result(timeout=60))     # or: await job.aresult(timeout=60)
print(app.get_job(keyed.id).state)  # JobNotFoundError / JobRemovedError otherwise

later = generate_report.options(delay="5m").enqueue(user_id=2)
print(later.refresh().state)      # delayed, for five minutes
