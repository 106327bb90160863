"""Check a call against a task's signature before anything is stored, and rebuild it
(with the declared types) when the job runs.

Named parameters are stored by name in `kwargs`; positional-only parameters and ``*args``
go to `args`. Annotated parameters are validated with pydantic (lax mode: ``"1"`` becomes
``1`` for an ``int``), then dumped in JSON mode, so a ``datetime`` or a pydantic model
travels as JSON and comes back as the declared type on the worker.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pydantic
from pydantic_core import PydanticSerializationError

from .errors import ArgumentsError

_EMPTY = inspect.Parameter.empty


class Signature:
    def __init__(self, fn: Callable[..., Any], task_name: str) -> None:
        self.task_name = task_name
        self.inner = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: validate nothing we cannot see
            hints = {}
        self._adapters: dict[str, pydantic.TypeAdapter[Any]] = {}
        for name, param in self.inner.parameters.items():
            hint = hints.get(name, _EMPTY)
            if hint is _EMPTY or hint is Any:
                continue
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                hint = list[hint]  # type: ignore[valid-type]
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                hint = dict[str, hint]  # type: ignore[valid-type]
            self._adapters[name] = pydantic.TypeAdapter(hint)
        self.trivial = not self.inner.parameters
        # with *args present, the named parameters before it must travel positionally
        self._has_var_positional = any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in self.inner.parameters.values()
        )

    def _bind(self, args: tuple[Any, ...] | list[Any],
              kwargs: dict[str, Any]) -> inspect.BoundArguments:
        try:
            return self.inner.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentsError(f"{self.task_name}: {exc}") from None

    def _check(self, bound: inspect.BoundArguments, mode: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        problems: list[dict[str, Any]] = []
        for name, value in bound.arguments.items():
            adapter = self._adapters.get(name)
            if adapter is None:
                values[name] = value
                continue
            try:
                checked = adapter.validate_python(value)
                values[name] = adapter.dump_python(checked, mode="json") if mode == "json" \
                    else checked
            except pydantic.ValidationError as exc:
                for err in exc.errors():
                    problems.append({"loc": [name, *err["loc"]], "msg": err["msg"],
                                     "type": err["type"]})
            except PydanticSerializationError as exc:
                problems.append({"loc": [name], "msg": str(exc), "type": "serialization"})
        if problems:
            first = problems[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ArgumentsError(
                f"{self.task_name}: argument {where}: {first['msg']}", errors=problems
            )
        return values

    def _split(self, values: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, param in self.inner.parameters.items():
            if name not in values:
                continue
            if param.kind is inspect.Parameter.POSITIONAL_ONLY or (
                self._has_var_positional
                and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            ):
                args.append(values[name])
            elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                args.extend(values[name])
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                kwargs.update(values[name])
            else:
                kwargs[name] = values[name]
        return args, kwargs

    def encode(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any],
                                                                             dict[str, Any]]:
        """Validate a call and return its JSON-ready (args, kwargs)."""
        if self.trivial:
            if args or kwargs:
                self._bind(args, kwargs)
            return [], {}
        return self._split(self._check(self._bind(args, kwargs), "json"))

    def decode(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any],
                                                                       dict[str, Any]]:
        """Rebuild the call from stored JSON, with the declared types."""
        if self.trivial or not self._adapters:
            return args, kwargs
        return self._split(self._check(self._bind(args, kwargs), "python"))
