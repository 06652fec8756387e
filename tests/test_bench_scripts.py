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


def test_experiments_pool_only_the_runs_a_finished_benchmark_lists(tmp_path):
    """bench/exp_saved_runs.py and exp_rare_class_probes.py re-read a benchmark's runs: those its results.json
    lists, not every seed* folder left under it (an earlier, larger --seeds; another fold; a copy set aside)."""
    import json

    sys.path.insert(0, str(REPO / "bench"))
    from exp_common import benchmark_runs

    with pytest.raises(SystemExit, match="no results.json"):
        benchmark_runs(tmp_path)
    for name in ("A_R2/seed0", "A_R2/seed1", "A_R2/seed2", "B_R1/seed0", "A_R2/.seed0.previous"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "recipe.yaml").write_text("seed: 0\n")
    runs = [{"fold": "A_R2", "seed": 10, "output_dir": "elsewhere/A_R2/seed0"},
            {"fold": "A_R2", "seed": 11, "output_dir": "elsewhere/A_R2/seed1"}]
    (tmp_path / "results.json").write_text(json.dumps({"seeds": [10, 11], "runs": runs}))
    assert benchmark_runs(tmp_path) == {"A_R2": [tmp_path / "A_R2" / "seed0", tmp_path / "A_R2" / "seed1"]}
    (tmp_path / "results.json").write_text(json.dumps({"seeds": [10, 11, 12], "runs": runs + [
        {"fold": "C_R1", "seed": 12}]}))
    with pytest.raises(SystemExit, match=r"lists runs that are not there \(no recipe.yaml\): .*C_R1/seed2"):
        benchmark_runs(tmp_path)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a benchmark's results.json"):
        benchmark_runs(tmp_path)
