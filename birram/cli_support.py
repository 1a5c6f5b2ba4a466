"""What every command shares: the consoles and the one-line error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

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
