"""The bench scripts refuse a mistyped path before any work, with an argparse error (exit 2), never a traceback
or numbers measured on synthetic data instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expected", [
    (["bench/bench_data.py", "--real-data", "/nonexistent"], "not a raw dataset folder"),
    (["bench/bench_pipeline.py", "--models", "tiny", "--real-data", "/nonexistent"], "no recording in"),
    (["bench/bench_train.py", "--configs", "tiny", "--real-data", "/nonexistent"], "folder not found"),
    (["bench/bench_recipe.py", "recipes/nonexistent.yaml"], "recipe file(s) not found: recipes/nonexistent.yaml"),
])
def test_a_mistyped_path_is_an_error(argv, expected):
    proc = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error:" in proc.stderr and expected in proc.stderr and "Traceback" not in proc.stderr
