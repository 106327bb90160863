"""A job's keys as its client gave them: the dedup key the HTTP API makes from an
Idempotency-Key header is internal and never shown as the job's key."""

from __future__ import annotations

from ..jobs import Job

# Dedup keys the API makes from an Idempotency-Key header (never shown as a job's key)
IDEMPOTENCY_PREFIX = "idem:"
HASHED_IDEMPOTENCY_PREFIX = "idem#"


def client_keys(job: Job) -> tuple[str | None, str | None]:
    """(key, Idempotency-Key) as the client gave them: the backend's dedup key for an
    Idempotency-Key is internal (namespaced by task, maybe hashed)."""
    key = job.key
    if key is None or not key.startswith((IDEMPOTENCY_PREFIX, HASHED_IDEMPOTENCY_PREFIX)):
        return key, None
    given = job.meta.get("idempotency") if isinstance(job.meta, dict) else None
    header = given.get("key") if isinstance(given, dict) else None
    return None, header if isinstance(header, str) else None
