"""`deepprs predict` command (not implemented yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app (placeholder until the command lands)."""
