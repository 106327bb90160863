"""Flow control: a rate-limited email queue, per-tenant budgets and caps on an LLM task,
and a limiter shared by two tasks.

    conveyor worker examples.flow:app -q emails,llm   # stores the limits when it starts
    conveyor limits                                    # each limiter, its use, what it blocks
    conveyor limits set task:summarize --rate 20/m     # takes effect at the next claim
    conveyor limits reset task:summarize               # back to what the code declares
"""

from __future__ import annotations

from conveyor import Conveyor, RateLimited

app = Conveyor()  # $CONVEYOR_URL, else sqlite:///conveyor.db

app.queue("emails", rate_limit="10/s", concurrency=20)   # every job of the queue
app.limiter("openai", "500/m", queue="llm")              # one budget, shared by tasks


@app.task(queue="emails")
def send_email(to: str) -> str:
    return f"sent to {to}"


@app.task(queue="llm", limiters=["openai"],
          rate_limit="60/m", rate_key="tenant",           # each tenant its own budget
          concurrency=2, concurrency_key="tenant")        # and at most 2 running at once
def summarize(tenant: str, text: str) -> str:
    return text[:40]


@app.task(queue="llm", limiters=["openai"])
def embed(text: str, busy: bool = False) -> int:
    if busy:  # the service answered 429 Retry-After: 30
        raise RateLimited(retry_after=30, limiter="openai")
    return len(text)


def enqueue_some() -> None:
    summarize.enqueue("acme", "a long document")
    summarize.options(rate_key="globex").enqueue("acme", "billed to globex")
