"""Command-line interface (typer). Each command module only parses flags and calls the API."""
