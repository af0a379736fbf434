"""The README and the examples say what is true (issue: a Spark user's first hour)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(f"## {title}")[1].split("\n## ")[0]


def test_the_nc_walkthrough_says_it_needs_netcat() -> None:
    section = _section("Network word count with `nc`")
    assert "sudo apt install\nnetcat-openbsd" in section
    assert "asyncstream: connected to localhost:9000" in section


def test_pprint_is_not_said_to_match_pyspark_exactly() -> None:
    assert "exactly as PySpark's `pprint`" not in README
    assert "the format is exact; the order of the keys within a\nbatch is not" in README


def test_examples_cite_no_missing_spec_section() -> None:
    for example in (ROOT / "examples").glob("*.py"):
        assert "SPEC §" not in example.read_text(encoding="utf-8"), example.name


def test_an_example_uses_a_checkpoint() -> None:
    text = (ROOT / "examples" / "checkpointed_counts.py").read_text(encoding="utf-8")
    assert "StreamingContext.get_or_create(" in text
    assert "checkpointed_counts.py" in _section("Examples")


def test_the_readme_has_a_migration_section() -> None:
    section = _section("Migrating from PySpark")
    assert "from asyncstream.compat import SparkContext, StreamingContext" in section
