"""The ``asyncstream`` command line."""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line (placeholder, replaced below)."""
    return 0
