"""The code passes the project's lint rules (pyproject's [tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean() -> None:
    pytest.importorskip("ruff")
    dirs = ["src", "plugins", "tests", "benchmarks", "examples"]
    out = subprocess.run([sys.executable, "-m", "ruff", "check", *dirs], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
