"""Reading an enqueue request: its media type, its JSON body and its Idempotency-Key.

JSON is read strictly (orjson): ``NaN``, ``Infinity`` and numbers beyond a double's range
are not JSON and answer 400 instead of being stored as ``null``; a body nested deeper than
`MAX_JSON_DEPTH` levels answers 400 ``json-too-deep`` naming the limit. Numbers are strict
over HTTP: a task parameter declared ``int``, ``float`` or ``bool`` (or an optional one)
takes a JSON number (or boolean) of that kind, never ``true`` for an ``int`` or ``"1"``
for a ``float`` (the Python API stays lax, as pydantic is).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import orjson
import pydantic
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from ..errors import ArgumentsError
from ..task import MAX_KEY_LENGTH
from . import models as m
from .problems import ProblemError

MAX_JSON_DEPTH = 200  # levels of arrays and objects, the body's own object included
_SCALARS = {int, float, bool, type(None)}


def json_body_type(request: Request) -> None:
    """Refuse a body that is not JSON with 415 (curl -d sends a form by default)."""
    kind = request.headers.get("content-type")
    if kind is None:
        return
    media = kind.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/")
                                            and media.endswith("+json")):
        raise ProblemError(415, "unsupported-media-type", "Unsupported media type",
                           f"the body must be JSON (Content-Type: application/json), not {media}")


def parse_enqueue(raw: bytes) -> m.EnqueueRequest:
    if not raw.strip():
        return m.EnqueueRequest()
    check_json(raw)
    try:  # pydantic's JSON mode: faster here than validating orjson's objects
        return m.EnqueueRequest.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from None


def check_json(raw: bytes) -> None:
    """400 unless `raw` is strict JSON of at most MAX_JSON_DEPTH levels."""
    try:
        data = orjson.loads(raw)
    except RecursionError:
        raise too_deep() from None
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own, far above ours
            raise too_deep() from None
        hint = ""
        if b"NaN" in raw or b"Infinity" in raw or "infinity" in str(exc):
            hint = " (JSON has no NaN or Infinity, and a number must fit in a double)"
        raise ProblemError(400, "malformed-json", "Malformed JSON",
                           f"the request body is not valid JSON: {exc}{hint}") from None
    # fewer brackets than the limit cannot nest deeper than it (the usual case: no walk)
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and \
            _deeper_than(data, MAX_JSON_DEPTH):
        raise too_deep()


def too_deep() -> ProblemError:
    return ProblemError(400, "json-too-deep", "JSON nested too deep",
                        f"the request body nests arrays and objects deeper than "
                        f"{MAX_JSON_DEPTH} levels, the limit", limit=MAX_JSON_DEPTH)


def _deeper_than(value: Any, limit: int) -> bool:
    level = [value] if type(value) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            below += [v for v in items if type(v) in (dict, list)]
        level = below
    return False


# -- strict numbers ------------------------------------------------------------------------
# the Python types JSON values of each scalar annotation may have (strict: no bool for an
# int, no 1.5 or "1" for an int, no 0/1 for a bool)
_ACCEPTS: dict[Any, frozenset[type]] = {
    int: frozenset({int}), float: frozenset({int, float}), bool: frozenset({bool}),
    type(None): frozenset({type(None)})}
# per task function (tasks live as long as their app: a plain dict, fast on the hot path)
_strict_cache: dict[Callable[..., Any], tuple[list[str], dict[str, frozenset[type]]]] = {}


def _accepted_types(hint: Any) -> frozenset[type] | None:
    """The JSON value types a scalar annotation takes, or None (not checked here)."""
    if hint in _ACCEPTS:
        return _ACCEPTS[hint]
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        parts = [_ACCEPTS.get(arg) for arg in typing.get_args(hint)]
        if all(part is not None for part in parts):
            return frozenset().union(*(p for p in parts if p is not None))
    return None


def _describe(kinds: frozenset[type]) -> str:
    words = [word for kind, word in ((bool, "true or false"), (float, "a number"),
                                     (int, "an integer"), (type(None), "null"))
             if kind in kinds and not (kind is int and float in kinds)]
    return " or ".join(words)


def _strict_parameters(fn: Callable[..., Any]
                       ) -> tuple[list[str], dict[str, frozenset[type]]]:
    cached = _strict_cache.get(fn)
    if cached is None:
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable annotations: the signature check decides alone
            hints = {}
        params = inspect.signature(fn).parameters
        positional = [name for name, p in params.items()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        accepted = {name: kinds for name, p in params.items()
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                    and (kinds := _accepted_types(hints.get(name))) is not None}
        cached = _strict_cache[fn] = (positional, accepted)
    return cached


def check_numbers(task: str, fn: Callable[..., Any], body: m.EnqueueRequest) -> None:
    """Refuse a JSON value of the wrong kind for a number or boolean parameter, as the
    signature check does (ArgumentsError: 422 invalid-job, errors located by name)."""
    positional, accepted = _strict_parameters(fn)
    if not accepted or not (body.args or body.kwargs):
        return
    problems: list[dict[str, Any]] = []
    given = body.kwargs.items() if not body.args else \
        [*zip(positional, body.args, strict=False), *body.kwargs.items()]
    for name, value in given:
        kinds = accepted.get(name)
        if kinds is not None and type(value) not in kinds:
            problems.append({"loc": [name], "msg": f"Input should be {_describe(kinds)}, "
                                                   f"not {orjson.dumps(value).decode()[:40]}",
                             "type": "strict_number"})
    if problems:
        first = problems[0]
        raise ArgumentsError(f"{task}: argument {first['loc'][0]}: {first['msg']} (numbers "
                             "are strict over HTTP)", errors=problems)


# -- Idempotency-Key -----------------------------------------------------------------------
def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key: one header of 1-255 printable ASCII characters."""
    raw = request.headers.get("idempotency-key")
    if raw is None:
        return None
    if len(request.headers.getlist("idempotency-key")) > 1:
        raise ProblemError(400, "invalid-header", "Invalid header",
                           "send one Idempotency-Key header, not several")
    key = raw
    if len(key) >= 3 and key[0] == key[-1] == '"':  # the draft's sf-string form
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise ProblemError(400, "invalid-header", "Invalid header",
                           f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII "
                           "characters")
    return key
