"""Imports go one way, ground floor up (docs/MODULES.md): the import-linter contracts in pyproject.toml, checked
on every test run, so an upward import or Reflex inside backend/ fails the suite with the offending line."""

from __future__ import annotations

import os

from importlinter.cli import lint_imports

from backend.config import PROJECT_ROOT


def test_no_module_imports_a_layer_above_it_and_the_backend_never_imports_reflex(capsys):
    cwd = os.getcwd()
    os.chdir(PROJECT_ROOT)  # the contracts live in pyproject.toml
    try:
        code = lint_imports(no_cache=True)
    finally:
        os.chdir(cwd)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "2 kept, 0 broken" in report
