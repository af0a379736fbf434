from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import asyncstream


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in dir(asyncstream) if not name.startswith("_")}
    modules = {info.name for info in pkgutil.iter_modules(asyncstream.__path__)}
    assert set(asyncstream.__all__) == public - modules
    assert asyncstream.__all__ == sorted(asyncstream.__all__)


# __main__ is left out: importing it runs the command line.
MODULES = sorted(
    info.name for info in pkgutil.iter_modules(asyncstream.__path__) if info.name != "__main__"
)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_all(module: str) -> None:
    mod = importlib.import_module(f"asyncstream.{module}")
    assert isinstance(mod.__all__, list)
    for name in mod.__all__:
        assert hasattr(mod, name), f"asyncstream.{module}.__all__ names missing {name}"


def test_importing_asyncstream_does_not_load_testing() -> None:
    code = "import sys, asyncstream; print('asyncstream.testing' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "False\n"


def test_public_operators_have_docstrings_with_an_example() -> None:
    for name in dir(asyncstream.DStream):
        if name.startswith("_"):
            continue
        attr = getattr(asyncstream.DStream, name)
        if callable(attr):
            doc = attr.__doc__ or ""
            assert "Example:" in doc, f"DStream.{name} has no example in its docstring"
