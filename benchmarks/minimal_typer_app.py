"""The baseline for `playbook --help`: the smallest typer app with two commands.

It is set up like playbook's app (no rich help, no pretty tracebacks), so the ratio measures only what
playbook adds to typer, not the cost of rich that a default typer app would pay.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def hello(name: Annotated[str, typer.Argument(help="Who to greet.")]) -> None:
    """Say hello."""
    typer.echo(f"Hello {name}")


@app.command()
def goodbye(name: Annotated[str, typer.Argument(help="Who to see off.")]) -> None:
    """Say goodbye."""
    typer.echo(f"Goodbye {name}")


if __name__ == "__main__":
    app()
