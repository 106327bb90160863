"""Dedup modes: which enqueues fold into an existing job instead of storing a new one.

``Dedup(key, ...)`` is given per task (``@app.task(dedup=...)``) or per call
(``task.options(dedup=...)``). Its key is a template formatted with the call's arguments
by name (``"sync:{user_id}"``; a key without braces is used as it is) or a callable
over the arguments (``lambda user_id, **_: ...``): one rule for both places, so a
task's declaration and a single call read alike. Keys are scoped by task within a
queue: two tasks may use the same key without folding into each other.

The backend decides inside the enqueue's one atomic operation, from the state of the
newest job that took the key (never from a lock with a time to live, so a crashed
worker cannot leave a key held: sidekiq-unique-jobs' stale-lock failure class). The
modes, by the newest job with the key (the *holder*):

- ``until="finished"`` (the default): fold while the holder is waiting, delayed or
  active (a retry's wait included); once it completed, failed or was cancelled, a new
  job is stored.
- ``until="started"``: fold while the holder has not started (waiting or delayed, no
  attempt yet); ``replace=True`` gives it the newest call's arguments.
- ``ttl=...`` (throttle): fold while the holder is younger than ttl, whatever its state.
- ``debounce=...``: the first enqueue stores a job due ``debounce`` later; each later
  one, while that job has not started, pushes it to ``debounce`` after itself (never
  past ``max_wait`` after the first) and, with ``replace=True``, gives it its arguments.
- ``keep_last=True``: as ``until="finished"`` while the holder has not started (its
  arguments become the newest call's); while it is active, one new pending copy is
  stored, and later enqueues fold into that copy (the latest arguments run next).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .backoff import parse_duration
from .errors import InvalidOptionError

MAX_DEDUP_KEY = 255
# keep_last's copy stored while its key's job runs is delayed until this time (both
# backends) and made waiting by the first claim after that job ended
PARKED_AT = 253_402_300_799_000  # 9999-12-31T23:59:59Z
Until = Literal["started", "finished"]
Mode = Literal["finished", "started", "throttle", "debounce", "keep_last"]
_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class DedupSpec:
    """What a backend stores and decides with: the job's key and its mode's numbers."""

    key: str  # "<task>:<key>", unique per queue
    mode: Mode
    window_ms: int = 0  # throttle: ttl; debounce: the quiet time after the last enqueue
    max_wait_ms: int | None = None  # debounce: due at most this long after the first
    replace: bool = False  # a fold gives the holder the newest call's arguments


@dataclass(frozen=True, slots=True)
class Dedup:
    """One dedup rule; checked when made (InvalidOptionError), so nothing bad is stored."""

    key: str | Callable[..., Any]
    until: Until | None = None
    ttl: float | str | None = None
    debounce: float | str | None = None
    replace: bool = False
    keep_last: bool = False
    max_wait: float | str | None = None
    mode: Mode = field(init=False, default="finished")
    window_ms: int = field(init=False, default=0)
    max_wait_ms: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        _check_key_source(self.key)
        mode, window, max_wait = _check_mode(self)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "window_ms", window)
        object.__setattr__(self, "max_wait_ms", max_wait)

    def spec(self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any],
             bound: Callable[[], dict[str, Any]]) -> DedupSpec:
        """This call's spec; `bound` gives the call's arguments by name (for templates)."""
        return DedupSpec(f"{task}:{self._key(task, args, kwargs, bound)}", self.mode,
                         self.window_ms, self.max_wait_ms,
                         self.replace or self.mode == "keep_last")

    def _key(self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any],
             bound: Callable[[], dict[str, Any]]) -> str:
        if callable(self.key):
            try:
                value = self.key(*args, **kwargs)
            except Exception as exc:
                raise InvalidOptionError(f"{task}: the dedup key callable raised {exc!r}") \
                    from None
        elif "{" in self.key:
            try:
                value = _FORMATTER.vformat(self.key, (), bound())
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise InvalidOptionError(
                    f"{task}: dedup key template {self.key!r} does not fit the call's "
                    f"arguments ({exc!r})") from None
        else:
            value = self.key
        return _check_key_text(value, task)


def _check_key_source(key: Any) -> None:
    if callable(key):
        return
    if not isinstance(key, str):
        raise InvalidOptionError("Dedup key must be a string (a template over the call's "
                                 f"arguments) or a callable, got {key!r}")
    _check_key_text(key, "Dedup")
    try:
        fields = [(name, spec or "") for _, name, spec, _ in _FORMATTER.parse(key)
                  if name is not None]
    except ValueError as exc:
        raise InvalidOptionError(f"Dedup key {key!r} is not a valid template ({exc}); "
                                 "write literal braces as {{ and }}") from None
    for name, spec in fields:
        # argument names only: no attribute or item lookups (keys may come over HTTP)
        if not name.isidentifier() or "{" in spec:
            raise InvalidOptionError(f"Dedup key {key!r}: {{{name}}} must name an argument "
                                     "(no attributes, items or positions)")


def _check_key_text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidOptionError(f"{what}: the dedup key must be a string or an integer, "
                                 f"got {value!r}")
    text = str(value)
    if not text or len(text) > MAX_DEDUP_KEY:
        raise InvalidOptionError(f"{what}: the dedup key must be 1 to {MAX_DEDUP_KEY} "
                                 "characters")
    if any(c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029" for c in text):
        raise InvalidOptionError(f"{what}: the dedup key must not contain control "
                                 "characters or line breaks")
    return text


def _ms(value: Any, what: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise InvalidOptionError(f"Dedup {what} must not be negative, got {value!r}")
    ms = round(parse_duration(value, f"Dedup {what}") * 1000)
    if ms <= 0:
        raise InvalidOptionError(f"Dedup {what} must be longer than 0, got {value!r}")
    return ms


def _check_combination(d: Dedup) -> None:
    """Arguments that mean nothing together (each mode is one sentence of the module
    docstring, and takes only its own arguments)."""
    if d.until not in (None, "started", "finished"):
        raise InvalidOptionError(f"Dedup until must be 'started' or 'finished', got {d.until!r}")
    for name in ("replace", "keep_last"):
        if not isinstance(getattr(d, name), bool):
            raise InvalidOptionError(f"Dedup {name} must be True or False")
    if d.max_wait is not None and d.debounce is None:
        raise InvalidOptionError("Dedup max_wait bounds a debounce: give debounce= too")
    modes = [name for name, given in (("ttl", d.ttl is not None),
                                      ("debounce", d.debounce is not None),
                                      ("keep_last", d.keep_last)) if given]
    if len(modes) > 1:
        raise InvalidOptionError(f"Dedup: {' and '.join(modes)} are different modes; "
                                 "give one")
    if modes and d.until is not None:
        raise InvalidOptionError(f"Dedup: {modes[0]} does not take until= (it decides "
                                 "by its own rule)")


def _check_mode(d: Dedup) -> tuple[Mode, int, int | None]:
    """The mode the arguments name, or InvalidOptionError."""
    _check_combination(d)
    if d.ttl is not None:
        if d.replace:
            raise InvalidOptionError("Dedup: a throttle (ttl) keeps the first job; "
                                     "replace= does not apply")
        return "throttle", _ms(d.ttl, "ttl"), None
    if d.debounce is not None:
        window = _ms(d.debounce, "debounce")
        max_wait = None if d.max_wait is None else _ms(d.max_wait, "max_wait")
        if max_wait is not None and max_wait < window:
            raise InvalidOptionError("Dedup max_wait must be at least debounce")
        return "debounce", window, max_wait
    if d.keep_last:
        return "keep_last", 0, None
    if d.until == "started":
        return "started", 0, None
    if d.replace:
        raise InvalidOptionError("Dedup: replace= needs a job that has not started: use "
                                 "until='started', debounce= or keep_last=True")
    return "finished", 0, None


def check_dedup(value: Any) -> Dedup:
    if not isinstance(value, Dedup):
        raise InvalidOptionError(f"dedup must be a Dedup(...), got {type(value).__name__}")
    return value
