"""The training run's output folder: a used folder is refused, overwritten or resumed; a resume never starts from a
half-written checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from thermal_hf.errors import RecipeError, TrainingDivergedError
from thermal_hf.training.output_dir import (
    RESULT_FILES,
    check_output_dir,
    previous_run,
    remove_earlier_run,
    resolve_resume,
)


def _args(out: Path, resume=None, overwrite=False, do_train=True):
    return SimpleNamespace(output_dir=str(out), resume_from_checkpoint=resume, overwrite_output_dir=overwrite,
                           do_train=do_train)


def _checkpoint(out: Path, step: int, complete: bool = True, optimizer: bool = True) -> Path:
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    if optimizer:
        (folder / "optimizer.pt").write_bytes(b"state")
    if complete:
        (folder / "trainer_state.json").write_text("{}")
    return folder


def _earlier_run(out: Path) -> None:
    _checkpoint(out, 10)
    _checkpoint(out, 20)
    for name in ("model.safetensors", "config.json", "eval_report.json", "all_results.json", "recipe.yaml"):
        (out / name).write_text("earlier")
    (out / "notes.txt").write_text("mine")
    (out / "runs").mkdir()


def test_a_used_folder_is_refused_naming_what_it_holds(tmp_path):
    _earlier_run(tmp_path)
    with pytest.raises(RecipeError, match=r"holds an earlier run \(checkpoint-10, checkpoint-20, model.safetensors.*"
                                          r"resume_from_checkpoint: true.*overwrite_output_dir: true"):
        check_output_dir(_args(tmp_path), None)
    assert (tmp_path / "checkpoint-20").is_dir() and (tmp_path / "eval_report.json").read_text() == "earlier"
    assert check_output_dir(_args(tmp_path / "new"), None) == []  # a new or empty folder is fine
    assert check_output_dir(_args(tmp_path, do_train=False), None) == []  # evaluating only writes no checkpoint


def test_overwrite_removes_the_earlier_run_and_nothing_else(tmp_path):
    _earlier_run(tmp_path)
    remove_earlier_run(tmp_path, check_output_dir(_args(tmp_path, overwrite=True), None))
    assert previous_run(tmp_path) == []
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "runs").is_dir()


def test_a_resume_keeps_checkpoints_and_model_and_drops_the_earlier_results(tmp_path):
    _earlier_run(tmp_path)
    resume = resolve_resume(_args(tmp_path, resume="true"))
    assert resume == str(tmp_path / "checkpoint-20")
    remove_earlier_run(tmp_path, check_output_dir(_args(tmp_path, resume="true"), resume))
    assert (tmp_path / "checkpoint-10").is_dir() and (tmp_path / "model.safetensors").is_file()
    assert not any((tmp_path / name).exists() for name in RESULT_FILES)


def test_resume_skips_a_checkpoint_whose_save_was_interrupted(tmp_path, caplog):
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 13, complete=False)
    with caplog.at_level("WARNING", logger="thermal_hf.train"):
        assert resolve_resume(_args(tmp_path, resume="last")) == str(tmp_path / "checkpoint-10")
    assert "checkpoint-13 has no trainer_state.json" in caplog.text
    assert resolve_resume(_args(tmp_path / "none", resume=True)) is None
    assert resolve_resume(_args(tmp_path, resume="false")) is None


@pytest.mark.parametrize("kind, message", [("half", "has no trainer_state.json"), ("final", "holds no optimiser state"),
                                           ("empty", "has no trainer_state.json"), ("missing", "not a checkpoint folder")])
def test_a_resume_folder_that_cannot_be_continued_is_refused(tmp_path, kind, message):
    folder = {"half": lambda: _checkpoint(tmp_path, 5, complete=False),
              "final": lambda: _checkpoint(tmp_path, 6, optimizer=False),
              "empty": lambda: (tmp_path / "empty").mkdir() or tmp_path / "empty",
              "missing": lambda: tmp_path / "missing"}[kind]()
    with pytest.raises(RecipeError, match=message):
        resolve_resume(_args(tmp_path, resume=str(folder)))


def test_a_non_finite_loss_or_gradient_stops_training():
    from thermal_hf.training.callbacks import StopOnNonFinite

    args = SimpleNamespace(bf16=True, fp16=False, mixed_precision="bf16", device=torch.device("cpu"), output_dir="out")
    state = SimpleNamespace(global_step=7)
    StopOnNonFinite().on_log(args, state, None, logs={"loss": 1.5, "grad_norm": 2.0})
    with pytest.raises(TrainingDivergedError, match=r"step 7: grad_norm nan.*bf16 on the CPU"):
        StopOnNonFinite().on_log(args, state, None, logs={"loss": 1.5, "grad_norm": math.nan})
    with pytest.raises(TrainingDivergedError, match="loss inf"):
        StopOnNonFinite().on_log(args, state, None, logs={"loss": math.inf})


def test_a_model_with_a_non_finite_weight_is_not_saved():
    from conftest import make_tiny_model

    from thermal_hf.train import check_finite

    model = make_tiny_model()
    check_finite(model)
    with torch.no_grad():
        next(model.parameters())[0] = math.nan
    with pytest.raises(TrainingDivergedError, match="not finite"):
        check_finite(model)


def test_what_a_stopped_run_left_does_not_block_the_next(tmp_path):
    (tmp_path / "recipe.yaml").write_text("written when that run started")
    _checkpoint(tmp_path, 13, complete=False)
    left = check_output_dir(_args(tmp_path), None)
    assert sorted(left) == ["checkpoint-13", "recipe.yaml"]
    remove_earlier_run(tmp_path, left)
    assert previous_run(tmp_path) == []


def test_overwrite_never_removes_the_model_the_run_starts_from(tmp_path):
    _earlier_run(tmp_path)
    with pytest.raises(RecipeError, match="would remove .*the recipe's model_name_or_path"):
        check_output_dir(_args(tmp_path, overwrite=True), None, str(tmp_path))
    with pytest.raises(RecipeError, match="model_name_or_path"):
        check_output_dir(_args(tmp_path, overwrite=True), None, str(tmp_path / "checkpoint-10"))
    assert check_output_dir(_args(tmp_path, overwrite=True), None, "org/hub-model")  # not a folder of it


def test_resuming_another_folders_checkpoint_into_a_used_folder_is_refused(tmp_path):
    _earlier_run(tmp_path / "used")
    other = _checkpoint(tmp_path / "other", 10)
    with pytest.raises(RecipeError, match="is not one of its checkpoints"):
        check_output_dir(_args(tmp_path / "used", resume=str(other)), str(other))
    assert check_output_dir(_args(tmp_path / "fresh", resume=str(other)), str(other)) == []


def test_an_fp16_step_skipped_by_the_loss_scaler_is_not_divergence_and_a_nan_checkpoint_is_removed(tmp_path):
    from conftest import make_tiny_model

    from thermal_hf.training.callbacks import StopOnNonFinite

    args = SimpleNamespace(fp16=True, bf16=False, mixed_precision="fp16", device=torch.device("cuda"),
                           output_dir=str(tmp_path))
    state = SimpleNamespace(global_step=3, is_world_process_zero=True)
    StopOnNonFinite(lambda: True).on_log(args, state, None, logs={"loss": 2.0, "grad_norm": math.inf})
    with pytest.raises(TrainingDivergedError, match="grad_norm inf"):
        StopOnNonFinite(lambda: False).on_log(args, state, None, logs={"loss": 2.0, "grad_norm": math.inf})
    model = make_tiny_model()
    (tmp_path / "checkpoint-3").mkdir()
    StopOnNonFinite().on_save(args, state, None, model=model)
    assert (tmp_path / "checkpoint-3").is_dir()
    with torch.no_grad():
        next(model.parameters())[0] = math.nan
    with pytest.raises(TrainingDivergedError, match="weights that are not finite"):
        StopOnNonFinite().on_save(args, state, None, model=model)
    assert not (tmp_path / "checkpoint-3").exists()
