"""The ``conveyor`` command group itself: global options (``--app``, ``--url``,
``--version``) and one-line errors. Commands live in the sibling modules and register
themselves on `cli`; ``conveyor/cli/__init__.py`` imports them in ``--help`` order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import ConveyorError
from .common import Globals


class _OneLineErrors(TyperGroup):
    """Turns every expected failure into one line on stderr instead of a panel or traceback."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        url = os.environ.get("CONVEYOR_URL")
        _quiet_flags(self)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        except typer.TyperException as exc:  # a bad command line (click's usage errors)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            fail(exc.format_message() + hint, exc.exit_code)
        except ConveyorError as exc:
            fail(str(exc), 1)
        except typer.Abort:
            fail("aborted", 1)
        finally:  # undo what --url set (common.load), for callers that run us in-process
            _restore_env("CONVEYOR_URL", url)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _quiet_flags(group: Any) -> None:
    """Flags take no value: help shows ``--json``, not ``--json <bool>`` (typer's rich help
    prints a flag's type unless it has a metavar, so give each an empty one)."""
    for command in [group, *group.commands.values()]:
        help_option = command.get_help_option(typer.Context(command))  # made once, cached
        for param in [*command.params, help_option]:
            if getattr(param, "is_flag", False) and param.metavar is None:  # None: no --help
                param.metavar = ""


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def fail(message: str, code: int) -> NoReturn:
    """End the command with one line on stderr and exit `code`."""
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.exit(code)


cli = typer.Typer(cls=_OneLineErrors, invoke_without_command=True, add_completion=True,
                  pretty_exceptions_enable=False, rich_markup_mode="rich",
                  help="conveyor: background jobs for Python.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    ctx: typer.Context,
    app: Annotated[str | None, typer.Option(
        "--app", envvar="CONVEYOR_APP", metavar="MODULE:ATTR",
        help="Your Conveyor app, e.g. myproject.jobs:app.")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", envvar="CONVEYOR_URL", help="Backend URL; overrides the app's.")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    ctx.obj = Globals(app, url)
    if ctx.invoked_subcommand is None:  # bare `conveyor`: help, not an error
        text = ctx.get_help()  # rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit()


def main() -> None:
    """The ``conveyor`` script."""
    cli(prog_name="conveyor")
