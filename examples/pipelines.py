"""The README's "Flows": a chain that passes each result on, a group with a callback, and
a graph. `python -m examples.pipelines` in an empty folder writes conveyor.db there, runs
the flows with an in-process worker and prints what they returned."""

from __future__ import annotations

from conveyor import Conveyor, chain, current_job, group
from conveyor.testing import drain

app = Conveyor()  # $CONVEYOR_URL, else sqlite:///conveyor.db


@app.task
def fetch(url: str) -> str:
    return f"<html>{url}</html>"


@app.task
def parse(page: str | None = None) -> int:             # page: the previous job's result
    return len(page or "")


@app.task
def lookup(source: str) -> int:
    if source == "down":
        raise ValueError("service unavailable")
    return len(source)


@app.task
def summarize(counts: list[int | None] | None = None) -> dict[str, int]:
    failed = current_job().dependency_failures()       # a callback runs after failures too
    return {"total": sum(c or 0 for c in counts or []), "failed": len(failed)}


steps = chain(fetch.prepare("https://example.com"), parse.prepare(),
              pass_result="page").enqueue(app)         # all of it stored, or none

fan_out = group([lookup.prepare(s) for s in ("billing", "usage", "down")])
callback = fan_out.then(summarize.prepare(), pass_result="counts").enqueue(app)[-1]

flow = app.new_flow()                                  # any graph, parents first
a = flow.add(fetch.prepare("https://a.example"))
b = flow.add(lookup.prepare("down"))
merged = flow.add(parse.prepare(), after=[a, b], on_failure="skip")
flow.enqueue()

if __name__ == "__main__":
    drain(app)
    print(steps[-1].result(), callback.result(), app.get_job(merged.id).state.value)
