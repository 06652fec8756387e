"""End to end: `python -m thermal_hf.train` / `accelerate launch` on the tiny recipe.

- 2 CPU processes (gloo) train, evaluate and save; a 1-process evaluation of the saved model gives the same
  metrics (no sample duplicated or dropped by the multi-process gather); a checkpoint folder loads with
  `from_pretrained` together with its processor.
- A run resumed from its step-2 checkpoint ends exactly where the uninterrupted run ends (same global step,
  same weights, same optimizer state).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import free_port
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "recipes" / "tiny.yaml"
METRIC_KEYS = ("eval_accuracy", "eval_top3_accuracy", "eval_top5_accuracy", "eval_mean_class_accuracy", "eval_macro_f1")

pytestmark = pytest.mark.slow


def env_one_thread():
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env.pop("RANK", None)
    return env


def train_main(*argv):
    from thermal_hf.train import main

    assert main([str(TINY), *map(str, argv)]) == 0


def launch_two_processes(*argv) -> subprocess.CompletedProcess:
    """`accelerate launch` of the tiny recipe on 2 CPU processes (gloo); fails the test if the run fails."""
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--main_process_port", free_port(),
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "thermal_hf.train", TINY, *argv,
    ]
    proc = subprocess.run(list(map(str, cmd)), cwd=REPO, env=env_one_thread(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def assert_one_process_evaluates_alike(out, tmp_path, common):
    """The model saved in ``out`` by 2 processes, evaluated by 1, gives the logits the 2 processes evaluated."""
    assert json.loads((out / "eval_report.json").read_text())["num_processes"] == 2
    out1 = tmp_path / "eval1"
    train_main("--model_name_or_path", out, "--do_train", "false", "--output_dir", out1, *common)
    two = json.loads((out / "eval_predictions.json").read_text())
    one = json.loads((out1 / "eval_predictions.json").read_text())
    assert len(two["logits"]) == len(one["logits"]) == 10 and two["labels"] == one["labels"]
    np.testing.assert_allclose(np.asarray(two["logits"]), np.asarray(one["logits"]), atol=2e-3)


def test_two_processes_then_one_process_eval(synthetic_root, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    # raw folder + cache_dir: the first process converts, the other waits and reuses the conversion
    common = ["--dataset", synthetic_root, "--cache_dir", cache, "--max_eval_samples", "10"]
    proc = launch_two_processes("--output_dir", out, "--max_steps", "2", *common,
                                "--remove_unused_columns", "true")  # the measured trap: must not strip the collator's
    assert "find_unused_parameters=True was specified" not in proc.stderr  # every parameter is used: no search
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    two = json.loads((out / "eval_results.json").read_text())
    report = json.loads((out / "eval_report.json").read_text())
    # `accelerate launch --cpu` would quietly start ONE process; --multi_gpu on a machine without GPUs runs
    # torchrun with the gloo backend (the recipe's use_cpu), so this really is two processes.
    assert report["num_processes"] == 2
    assert report["num_samples"] == 10  # 10 clips over 2 processes x batch 4: padding duplicates were dropped
    for name in ("config.json", "model.safetensors", "video_preprocessor_config.json", "recipe.yaml",
                 "class_distribution.json"):
        assert (out / name).is_file(), name
    assert len(list(cache.iterdir())) == 1  # converted once

    # the same model evaluated by one process
    out1 = tmp_path / "eval1"
    train_main("--model_name_or_path", out, "--do_train", "false", "--output_dir", out1, *common)
    one = json.loads((out1 / "eval_results.json").read_text())
    for key in METRIC_KEYS:
        assert one[key] == pytest.approx(two[key]), key
    # eval_loss is not compared: Trainer averages per-batch (weighted) mean losses, and the batches differ with
    # the number of processes (2 x 4 with padding vs 1 x 4). The metrics above are computed from all gathered
    # predictions, which is what must not depend on the process count.
    assert one["eval_loss"] == pytest.approx(two["eval_loss"], rel=0.05)
    assert (out1 / "eval_recipe.yaml").is_file() and not (out1 / "recipe.yaml").exists()

    # evaluated again into its own folder: the training run's recipe and class counts (the model card's) stay
    recipe, counts = (out / "recipe.yaml").read_bytes(), (out / "class_distribution.json").read_bytes()
    train_main("--model_name_or_path", out, "--do_train", "false", "--output_dir", out, *common)
    assert (out / "recipe.yaml").read_bytes() == recipe and (out / "class_distribution.json").read_bytes() == counts
    assert "do_train: false" in (out / "eval_recipe.yaml").read_text()

    # every checkpoint folder is a loadable model + processor
    from transformers import AutoModelForVideoClassification, AutoVideoProcessor

    import thermal_hf  # noqa: F401  (Auto* registration)

    checkpoint = out / "checkpoint-2"
    model = AutoModelForVideoClassification.from_pretrained(checkpoint)
    processor = AutoVideoProcessor.from_pretrained(checkpoint)
    assert processor.num_frames == 16 and model.config.num_frames == 16
    assert tuple(model.config.image_size) == (32, 48)


def test_resuming_with_another_model_is_refused_naming_the_key(converted_dataset, tmp_path, capsys):
    from thermal_hf.train import main

    out = tmp_path / "run"
    common = ["--dataset", converted_dataset, "--max_steps", "2", "--save_steps", "2", "--do_eval", "false"]
    train_main("--output_dir", out, *common)
    before = (out / "checkpoint-2" / "model.safetensors").read_bytes()
    assert main([str(TINY), "--output_dir", str(out), "--resume_from_checkpoint", "true", "--max_steps", "4",
                 "--stem_width", "32", *map(str, common[:2])]) == 2
    err = capsys.readouterr().err
    assert "holds another model than this recipe builds (stem_width: 64 in the checkpoint, 32 now" in err
    assert (out / "checkpoint-2" / "model.safetensors").read_bytes() == before and not (out / "checkpoint-4").exists()


def test_a_second_run_into_a_used_folder_is_refused_then_overwritten(converted_dataset, tmp_path, capsys):
    from thermal_hf.train import main

    out = tmp_path / "run"
    common = ["--dataset", converted_dataset, "--max_steps", "2", "--save_steps", "2", "--do_eval", "false"]
    train_main("--output_dir", out, *common)
    before = (out / "model.safetensors").read_bytes()
    assert main([str(TINY), "--output_dir", str(out), "--learning_rate", "0.5", *map(str, common)]) == 2
    assert "holds an earlier run (checkpoint-2, model.safetensors" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before  # nothing written, nothing lost
    train_main("--output_dir", out, "--learning_rate", "0.5", "--overwrite_output_dir", "true", *common)
    assert (out / "model.safetensors").read_bytes() != before and "learning_rate: 0.5" in (out / "recipe.yaml").read_text()


def test_a_refused_run_with_overwrite_leaves_the_earlier_run_in_place(converted_dataset, tiny_model_dir, tmp_path,
                                                                      capsys):
    """overwrite_output_dir clears the folder only once the data, model and trainer are accepted."""
    from thermal_hf.train import main

    out = tmp_path / "run"
    common = ["--max_steps", "2", "--save_steps", "2", "--do_eval", "false", "--overwrite_output_dir", "true"]
    train_main("--output_dir", out, "--dataset", converted_dataset, *common)
    before = sorted(p.name for p in out.iterdir())
    weights = (out / "model.safetensors").read_bytes()
    refused = {
        "a missing dataset": (["--dataset", tmp_path / "nowhere"], "folder not found"),
        "windows the dataset was not made with": (["--dataset", converted_dataset, "--num_frames", "32"],
                                                  "holds windows made with num_frames 16"),
        "a model of another depth": (["--dataset", converted_dataset, "--model_name_or_path", tiny_model_dir,
                                      "--model_depth", "50"], "is a depth-18 model"),
    }
    for why, (argv, message) in refused.items():
        assert main([str(TINY), "--output_dir", str(out), *map(str, argv), *common]) == 2, why
        assert message in capsys.readouterr().err, why
        assert sorted(p.name for p in out.iterdir()) == before, why
        assert (out / "model.safetensors").read_bytes() == weights, why


@pytest.mark.parametrize("loader", [[], ["--dataloader_num_workers", "2", "--dataloader_persistent_workers", "true"]],
                         ids=["main process", "persistent workers"])
def test_resume_matches_uninterrupted_run(converted_dataset, tmp_path, loader):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    # With augmentation and mixup: read in the main process, their random streams are saved in the checkpoint and
    # continued; read by workers, each item's draw is keyed on its epoch and index. 12 clips: 3 steps an epoch, so
    # the resumed steps 3 and 4 cross into the second epoch (which persistent workers must see).
    common = ["--dataset", converted_dataset, "--max_steps", "4", "--save_steps", "2", "--do_eval", "false",
              "--max_train_samples", "12", "--horizontal_flip_prob", "0.5", "--temperature_offset", "1.0",
              "--mixup_alpha", "0.4", *loader]
    train_main("--output_dir", full, *common)
    # "killed" after the step-2 checkpoint: only that checkpoint exists in the new run's folder
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    train_main("--output_dir", resumed, "--resume_from_checkpoint", "true", *common)

    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    losses = {name: [e["loss"] for e in json.loads((run / "trainer_state.json").read_text())["log_history"]
                     if "loss" in e and e["step"] > 2] for name, run in (("full", full), ("resumed", resumed))}
    assert len(losses["full"]) == 2 and losses["full"] == pytest.approx(losses["resumed"], rel=1e-5)
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    opt_a = torch.load(full / "checkpoint-4" / "optimizer.pt", weights_only=True)["state"]
    opt_b = torch.load(resumed / "checkpoint-4" / "optimizer.pt", weights_only=True)["state"]
    assert opt_a.keys() == opt_b.keys()
    for index in opt_a:
        assert float(opt_a[index]["step"]) == float(opt_b[index]["step"]) == 4.0
        assert torch.allclose(opt_a[index]["exp_avg_sq"], opt_b[index]["exp_avg_sq"], atol=1e-6)


def test_two_processes_retrain_the_classifier_once(synthetic_root, tmp_path):
    # retrain_classifier under 2 processes: the main process fits the last layer and broadcasts it, so the clips
    # evaluated by the other process get the saved model's logits, exactly as a 1-process evaluation gives them.
    out, cache = tmp_path / "out", tmp_path / "cache"
    common = ["--dataset", synthetic_root, "--cache_dir", cache, "--max_eval_samples", "10", "--max_train_samples", "24"]
    launch_two_processes("--output_dir", out, "--max_steps", "2", "--save_strategy", "no", *common,
                         "--retrain_classifier", "true", "--retrain_classifier_passes", "1")
    assert json.loads((out / "train_results.json").read_text())["retrain_classifier_clips"] == 24  # one pass, once
    assert_one_process_evaluates_alike(out, tmp_path, common)


def test_two_processes_average_weights_into_one_model(synthetic_root, tmp_path):
    # weight_averaging under `accelerate launch` with 2 processes: each recomputes the batch norms on its shard of
    # the clips and they agree on the mean (tests/test_weight_averaging.py checks the mean), so the run ends, and
    # the clips the other process evaluated get the saved model's logits, as a 1-process evaluation gives them.
    out, cache = tmp_path / "out", tmp_path / "cache"
    common = ["--dataset", synthetic_root, "--cache_dir", cache, "--max_eval_samples", "10", "--max_train_samples", "16"]
    proc = launch_two_processes("--output_dir", out, "--max_steps", "-1", "--num_train_epochs", "2",
                                "--save_strategy", "no", *common, "--callbacks", "weight_averaging",
                                "--weight_averaging_start", "0")
    assert "mean of the weights at the end of the last 2 epochs" in proc.stdout
    assert_one_process_evaluates_alike(out, tmp_path, common)


def test_a_recipe_fine_tunes_an_imported_zoo_checkpoint(converted_dataset, tmp_path, capsys):
    """`pretrained` imports a pytorchvideo checkpoint (here a bare state dict named .pth, which `auto` takes for
    MMAction2: the error names the recipe key to set), then trains from its backbone."""
    from test_convert_checkpoint import make_pytorchvideo_net

    from thermal_hf.train import main

    net = make_pytorchvideo_net(depth=18)
    checkpoint = tmp_path / "zoo_r18.pth"
    torch.save(net.state_dict(), checkpoint)
    common = [str(TINY), "--dataset", str(converted_dataset), "--max_steps", "1", "--do_eval", "false",
              "--save_strategy", "no", "--pretrained", str(checkpoint)]
    assert main([*common, "--output_dir", str(tmp_path / "auto")]) == 2
    assert "set the recipe key pretrained_format: pytorchvideo" in capsys.readouterr().err

    out = tmp_path / "run"
    assert main([*common, "--output_dir", str(out), "--pretrained_format", "pytorchvideo"]) == 0
    conversion = json.loads((out / "pretrained_import" / "conversion.json").read_text())
    assert conversion["source"]["format"] == "pytorchvideo" and conversion["backbone_tensors_loaded"] > 0
    imported = load_file(out / "pretrained_import" / "model.safetensors")
    key = "slowfast.blocks.0.multipathway_blocks.0.conv.weight"
    torch.testing.assert_close(imported[key], net.state_dict()[key.removeprefix("slowfast.")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine use_cpu false means NCCL on the GPUs")
def test_two_processes_without_use_cpu_still_train_one_model(synthetic_root, tmp_path):
    """A recipe that does not set use_cpu (thermal_native.yaml), launched on 2 processes on a machine without an
    accelerator: the processes must join one gloo job, not each train a model of its own into one folder."""
    out = tmp_path / "out"
    proc = launch_two_processes("--output_dir", out, "--max_steps", "2", "--use_cpu", "false", "--dataset",
                                synthetic_root, "--cache_dir", tmp_path / "cache", "--max_eval_samples", "10",
                                "--save_strategy", "no")
    report = json.loads((out / "eval_report.json").read_text())
    assert report["num_processes"] == 2 and report["num_samples"] == 10
    assert "use_cpu set to true" in proc.stdout + proc.stderr


@pytest.mark.parametrize("stop_at, kept", [(3, "checkpoint-2"), (0, None)])
def test_ctrl_c_says_what_is_kept_and_the_command_that_continues(converted_dataset, tmp_path, capsys, monkeypatch,
                                                                stop_at, kept):
    from thermal_hf.train import main
    from thermal_hf.training.trainer import ThermalTrainer

    out = tmp_path / "out"
    common = [str(TINY), "--dataset", str(converted_dataset), "--output_dir", str(out), "--do_eval", "false"]
    step = ThermalTrainer.training_step

    def interrupted(self, *args, **kwargs):
        if self.state.global_step == stop_at:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ThermalTrainer, "training_step", interrupted)
        assert main(common) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if kept:
        assert f"interrupted: {out} keeps {kept}; the same command with --resume_from_checkpoint true continues " \
               f"from {kept}" in err
    else:
        assert f"interrupted: no complete checkpoint in {out}; the same command with --resume_from_checkpoint " \
               "true starts it again from step 0" in err
    # What it says works.
    assert main([*common, "--resume_from_checkpoint", "true"]) == 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
