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


def test_the_first_weight_that_is_not_finite_is_named():
    from conftest import make_tiny_model

    from thermal_hf.training.callbacks import non_finite_parameter

    model = make_tiny_model()
    assert non_finite_parameter(model) is None
    name, parameter = next(iter(model.named_parameters()))
    with torch.no_grad():
        parameter.view(-1)[0] = math.nan
    assert non_finite_parameter(model) == name


def test_a_run_stopped_while_saving_its_first_checkpoint_is_continued_afresh_when_asked(tmp_path):
    _checkpoint(tmp_path, 13, complete=False)
    with pytest.raises(RecipeError, match="holds an earlier run"):
        check_output_dir(_args(tmp_path), None)
    args = _args(tmp_path, resume="true")
    assert resolve_resume(args) is None  # nothing to resume: training starts afresh there
    left = check_output_dir(args, None)
    assert left == ["checkpoint-13"]
    remove_earlier_run(tmp_path, left)
    assert previous_run(tmp_path) == []


def test_a_users_own_report_is_not_a_run_but_evaluates_outputs_are(tmp_path):
    (tmp_path / "report.md").write_text("my notes")
    assert previous_run(tmp_path) == []
    (tmp_path / "metrics.json").write_text("{}")
    assert previous_run(tmp_path) == ["metrics.json", "report.md"]


def test_no_run_removes_the_model_it_starts_from(tmp_path):
    _earlier_run(tmp_path)
    with pytest.raises(RecipeError, match="would remove .*part of the recipe's model_name_or_path"):
        check_output_dir(_args(tmp_path, overwrite=True), None, str(tmp_path))
    with pytest.raises(RecipeError, match="model_name_or_path"):
        check_output_dir(_args(tmp_path, overwrite=True), None, str(tmp_path / "checkpoint-10"))
    assert check_output_dir(_args(tmp_path, overwrite=True), None, "org/hub-model")  # not a folder of it
    (tmp_path / "base_model").mkdir()  # inside output_dir but not removed
    assert check_output_dir(_args(tmp_path, overwrite=True), None, str(tmp_path / "base_model"))
    half = _checkpoint(tmp_path / "stopped", 13, complete=False)  # removed by a resume: the same rule
    with pytest.raises(RecipeError, match="model_name_or_path"):
        check_output_dir(_args(tmp_path / "stopped", resume="true"), None, str(half))


def test_only_the_folders_own_checkpoints_count_as_resuming_it(tmp_path):
    _earlier_run(tmp_path / "out")
    nested = _checkpoint(tmp_path / "out" / "old_run", 5)
    with pytest.raises(RecipeError, match="is not one of its checkpoints"):
        check_output_dir(_args(tmp_path / "out", resume=str(nested)), str(nested))
    elsewhere = _checkpoint(tmp_path / "disk", 30)
    (tmp_path / "out" / "checkpoint-30").symlink_to(elsewhere)  # a linked checkpoint of the folder is its own
    assert resolve_resume(_args(tmp_path / "out", resume="true")) == str(tmp_path / "out" / "checkpoint-30")
    check_output_dir(_args(tmp_path / "out", resume="true"), str(tmp_path / "out" / "checkpoint-30"))
    remove_earlier_run(tmp_path / "out", ["checkpoint-30"])  # unlinks, keeps the files it pointed to
    assert (elsewhere / "trainer_state.json").is_file()


def test_resuming_another_folders_checkpoint_into_a_used_folder_is_refused(tmp_path):
    _earlier_run(tmp_path / "used")
    other = _checkpoint(tmp_path / "other", 10)
    with pytest.raises(RecipeError, match="is not one of its checkpoints"):
        check_output_dir(_args(tmp_path / "used", resume=str(other)), str(other))
    assert check_output_dir(_args(tmp_path / "fresh", resume=str(other)), str(other)) == []


def test_an_fp16_step_skipped_by_the_loss_scaler_is_not_divergence():
    from thermal_hf.training.callbacks import StopOnNonFinite

    # fp16 from `accelerate launch` leaves args.fp16 false: mixed_precision says it.
    args = SimpleNamespace(fp16=False, bf16=False, mixed_precision="fp16", device=torch.device("cuda"), output_dir="o")
    state = SimpleNamespace(global_step=3)
    StopOnNonFinite(lambda: True).on_log(args, state, None, logs={"loss": 2.0, "grad_norm": math.inf})
    with pytest.raises(TrainingDivergedError, match="grad_norm inf"):
        StopOnNonFinite(lambda: False).on_log(args, state, None, logs={"loss": 2.0, "grad_norm": math.inf})


def test_a_checkpoint_of_weights_that_are_not_finite_is_never_made(tmp_path):
    from conftest import make_tiny_model

    from thermal_hf.configs import ThermalTrainingArguments
    from thermal_hf.training.trainer import ThermalTrainer

    args = ThermalTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", save_total_limit=1)
    model = make_tiny_model()
    trainer = ThermalTrainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    trainer.state.global_step = 1
    trainer._save_checkpoint(model, None)
    assert (tmp_path / "checkpoint-1").is_dir()
    with torch.no_grad():
        next(model.parameters())[0] = math.nan
    trainer.state.global_step = 2
    with pytest.raises(TrainingDivergedError, match=r"step 2: weights that are not finite \(slowfast"):
        trainer._save_checkpoint(model, None)
    assert (tmp_path / "checkpoint-1").is_dir() and not (tmp_path / "checkpoint-2").exists()  # nothing rotated
    with pytest.raises(TrainingDivergedError, match="at the end: weights that are not finite"):
        trainer.check_weights("at the end")  # what `train` asks before it saves the model
