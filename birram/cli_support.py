"""What every command shares: the consoles and the one-line error handling."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer import _click
from typer.core import Abort, TyperGroup

from birram.errors import BirramError

console = Console()
# soft_wrap: an error stays one line however narrow the terminal is.
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn errors the user can fix into one line on stderr and their exit code (2: usage)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BirramError as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                              markup=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]


class OneLineErrors(TyperGroup):
    """Usage errors as one line (``error: ...``) with exit code 2, not a framed block."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _click.exceptions.NoArgsIsHelpError as err:
            err.show()
            code = err.exit_code
        except _click.exceptions.ClickException as err:
            where = err.ctx.command_path if getattr(err, "ctx", None) else "birram"
            message = " ".join(err.format_message().split())
            err_console.print(f"[bold red]error:[/] {escape(message)} (see {escape(where)} "
                              "--help)", highlight=False)
            code = err.exit_code
        except Abort:
            err_console.print("interrupted", highlight=False)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)
