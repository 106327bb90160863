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
import weakref
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
    data = loads_strict(raw)
    try:
        return m.EnqueueRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from None


def loads_strict(raw: bytes) -> Any:
    """Strict JSON of at most MAX_JSON_DEPTH levels, else a 400 problem."""
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
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise too_deep()
    return data


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
_strict_cache: weakref.WeakKeyDictionary[Callable[..., Any],
                                         tuple[inspect.Signature,
                                               dict[str, pydantic.TypeAdapter[Any]]]] = \
    weakref.WeakKeyDictionary()


def _is_scalar(hint: Any) -> bool:
    if hint in _SCALARS:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return all(arg in _SCALARS for arg in typing.get_args(hint))
    return False


def _strict_parameters(fn: Callable[..., Any]
                       ) -> tuple[inspect.Signature, dict[str, pydantic.TypeAdapter[Any]]]:
    cached = _strict_cache.get(fn)
    if cached is None:
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable annotations: the signature check decides alone
            hints = {}
        signature = inspect.signature(fn)
        adapters = {name: pydantic.TypeAdapter(hints[name])
                    for name, param in signature.parameters.items()
                    if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
                    and _is_scalar(hints.get(name))}
        cached = _strict_cache[fn] = (signature, adapters)
    return cached


def check_numbers(task: str, fn: Callable[..., Any], body: m.EnqueueRequest) -> None:
    """Refuse a JSON value of the wrong kind for a number or boolean parameter, as the
    signature check does (ArgumentsError: 422 invalid-job, errors located by name)."""
    signature, adapters = _strict_parameters(fn)
    if not adapters or not (body.args or body.kwargs):
        return
    positional = [name for name, p in signature.parameters.items()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    problems: list[dict[str, Any]] = []
    for name, value in [*zip(positional, body.args, strict=False), *body.kwargs.items()]:
        adapter = adapters.get(name)
        if adapter is None:
            continue
        try:
            adapter.validate_python(value, strict=True)
        except pydantic.ValidationError as exc:
            problems.append({"loc": [name], "msg": exc.errors()[0]["msg"],
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
