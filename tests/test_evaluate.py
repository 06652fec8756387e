"""`thermal-hf evaluate`: files, numbers recomputed by hand from predictions.csv, and 2 processes == 1 process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_NUM_FRAMES, free_port, make_tiny_model

from thermal_hf.evaluate import CONFUSION_DPI, CONFUSION_FIGSIZE, main

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_model_dir(converted_dataset, tmp_path_factory) -> Path:
    """The tiny model after a few Adam steps on the synthetic training split (so its predictions vary)."""
    from thermal_hf.data.convert import load_converted
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
    from thermal_hf.training.data import ThermalClipDataset, collate_clips

    torch.manual_seed(0)
    model = make_tiny_model(head_init_std=0.1)
    processor = ThermalVideoProcessor(num_frames=TINY_NUM_FRAMES)
    train = ThermalClipDataset(load_converted(converted_dataset)["train"], processor, train=False)
    loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, collate_fn=collate_clips)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step, batch in enumerate(loader):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
        if step == 2:
            break
    out = tmp_path_factory.mktemp("trained") / "model"
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def evaluated(trained_model_dir, converted_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "out"
    assert main(["--model", str(trained_model_dir), "--dataset", str(converted_dataset), "--output_dir", str(out),
                 "--batch_size", "7", "--device", "cpu"]) == 0
    return out


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_every_file_and_numbers_match_a_hand_computation(evaluated, converted_dataset, capsys):
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    from thermal_hf.data.convert import load_converted

    metrics = json.loads((evaluated / "metrics.json").read_text())
    names = metrics["label_names"]
    with open(evaluated / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    split = load_converted(converted_dataset)["validation"]
    assert len(rows) == len(split) == metrics["num_samples"] > 0

    # Ids: one row per sample, in dataset order.
    for column in ("image_id", "recording"):
        assert [r[column] for r in rows] == split[column]
    assert [int(r["keyframe_index"]) for r in rows] == split["keyframe_index"]
    assert [int(r["object_id"]) for r in rows] == split["object_id"]
    true = np.array([names.index(r["true_label"]) for r in rows])
    assert true.tolist() == [names.index(split.features["label"].int2str(v)) for v in split["label"]]

    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    pred = np.array([names.index(r["predicted_label"]) for r in rows])
    assert (pred == probs.argmax(1)).all()
    assert [r["top2_label"] for r in rows] == [names[i] for i in np.argsort(-probs, 1)[:, 1]]
    ranks = np.argsort(-probs, axis=1)
    for k in (1, 3, 5):
        hand = float(np.mean([t in ranks[i, :k] for i, t in enumerate(true)]))
        assert metrics[f"top{k}_accuracy"] == pytest.approx(hand)
    present = np.unique(true)
    recall = [np.mean(pred[true == c] == c) for c in present]
    assert metrics["mean_class_accuracy"] == pytest.approx(np.mean(recall))
    assert metrics["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro", zero_division=0))
    p, r, _, support = precision_recall_fscore_support(true, pred, labels=range(len(names)), zero_division=0)
    for i, name in enumerate(names):
        assert metrics["per_class"][name]["precision"] == pytest.approx(p[i])
        assert metrics["per_class"][name]["recall"] == pytest.approx(r[i])
        assert metrics["per_class"][name]["support"] == support[i]
    matrix = np.zeros((len(names), len(names)), int)
    np.add.at(matrix, (true, pred), 1)
    assert metrics["confusion_matrix"] == matrix.tolist()

    # Baseline: majority class of the train split.
    train_labels = load_converted(converted_dataset)["train"]["label"]
    majority = np.bincount(train_labels, minlength=len(names)).argmax()
    assert metrics["baseline"]["source_split"] == "train"
    assert metrics["baseline"]["majority_class"] == names[majority]
    assert metrics["baseline"]["top1_accuracy"] == pytest.approx(np.mean(true == majority))

    # Identity of model and data.
    assert metrics["model"]["weights_sha256"] and metrics["model"]["num_frames"] == TINY_NUM_FRAMES
    assert metrics["dataset"]["split"] == "validation" and metrics["dataset"]["num_rows"] == len(split)

    report = (evaluated / "report.md").read_text()
    assert f"| top-1 accuracy | {100 * metrics['top1_accuracy']:.2f} % |" in report
    assert all(f"| {n} |" in report for n in names)
    width, height = _png_size(evaluated / "confusion_matrix.png")
    assert (width, height) == (int(CONFUSION_FIGSIZE[0] * CONFUSION_DPI), int(CONFUSION_FIGSIZE[1] * CONFUSION_DPI))
    import matplotlib.image

    assert matplotlib.image.imread(evaluated / "confusion_matrix.png").shape[:2] == (height, width)


def test_bad_split_raw_folder_and_printed_baseline(trained_model_dir, converted_dataset, synthetic_root, tmp_path, capsys, monkeypatch):
    assert main(["--model", str(trained_model_dir), "--dataset", str(converted_dataset), "--split", "test",
                 "--output_dir", str(tmp_path)]) == 2
    assert "no split 'test'" in capsys.readouterr().err
    # A raw dataset folder is converted once (with the model's num_frames) into the cache, then evaluated.
    monkeypatch.setenv("THERMAL_HF_CACHE", str(tmp_path / "cache"))
    assert main(["--model", str(trained_model_dir), "--dataset", str(synthetic_root), "--output_dir",
                 str(tmp_path / "raw"), "--batch_size", "64"]) == 0
    out = capsys.readouterr().out
    assert "majority baseline (train:" in out and "top-1 accuracy" in out  # printed beside the model's numbers
    assert json.loads((tmp_path / "raw" / "metrics.json").read_text())["dataset"]["conversion_options"]["num_frames"] \
        == TINY_NUM_FRAMES


@pytest.mark.slow
def test_two_processes_give_the_same_numbers(trained_model_dir, converted_dataset, evaluated, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): no sample dropped or duplicated, identical metrics. Without
    a GPU the default --device auto must join the 2 processes too (it once let each evaluate everything alone)."""
    import torch

    out = tmp_path / "two"
    device = ["--device", "cpu"] if torch.cuda.is_available() else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         "-m", "thermal_hf.evaluate", "--model", str(trained_model_dir), "--dataset", str(converted_dataset),
         "--output_dir", str(out), "--batch_size", "5", *device],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((evaluated / "metrics.json").read_text())
    two = json.loads((out / "metrics.json").read_text())
    assert two["evaluation"]["num_processes"] == 2
    for key in ("top1_accuracy", "top3_accuracy", "top5_accuracy", "mean_class_accuracy", "macro_f1", "per_class",
                "confusion_matrix", "num_samples", "baseline"):
        assert two[key] == one[key], key
    with open(evaluated / "predictions.csv") as a, open(out / "predictions.csv") as b:
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["image_id"] + r["object_id"] + r["predicted_label"] for r in rows_a] == \
        [r["image_id"] + r["object_id"] + r["predicted_label"] for r in rows_b]
    np.testing.assert_allclose([float(r["top1_score"]) for r in rows_a], [float(r["top1_score"]) for r in rows_b],
                               atol=1e-5)


def test_raw_folder_is_converted_with_the_models_training_options(tiny_model_dir, tmp_path):
    """A model trained on a split grouped by recording is evaluated on that split, not the annotation files' own."""
    import shutil

    from thermal_hf.evaluate import training_conversion_options
    from thermal_hf.models.thermal_slowfast import ThermalSlowFastConfig

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    config = ThermalSlowFastConfig.from_pretrained(model_dir)

    class _Model:  # only the config is read
        pass

    model = _Model()
    model.config = config
    assert training_conversion_options(model_dir, model) == {"num_frames": config.num_frames}
    (model_dir / "recipe.yaml").write_text("split_by: recording\nval_fraction: 0.25\nsplit_seed: 3\ntarget: keyframe\n")
    assert training_conversion_options(model_dir, model) == {
        "num_frames": config.num_frames, "split_by": "recording", "val_fraction": 0.25, "seed": 3, "target": "keyframe"
    }
    # trained on people and scored per keyframe (eval_target): the people are converted, their answers voted
    (model_dir / "recipe.yaml").write_text("target: person\neval_target: keyframe\n")
    assert training_conversion_options(model_dir, model)["target"] == "person"


def test_held_out_recordings_of_the_recipe_are_what_validation_means(tiny_model_dir, converted_dataset, tmp_path):
    """A model trained with `eval_recordings` is evaluated on exactly those recordings, pooled from every split."""
    import shutil

    from datasets import concatenate_datasets

    from thermal_hf.data.convert import load_converted
    from thermal_hf.evaluate import evaluate

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    dsd = load_converted(converted_dataset)
    pooled = concatenate_datasets([dsd[name] for name in dsd])
    held_out = sorted(set(pooled["recording"]))[-1]
    expected = sum(1 for name in pooled["recording"] if name == held_out)
    assert 0 < expected < len(pooled)
    (model_dir / "recipe.yaml").write_text(f"eval_recordings: [{held_out}]\n")
    result = evaluate(model_dir, converted_dataset, tmp_path / "eval", progress=False)
    assert result["num_samples"] == expected
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()[1:]
    assert len(rows) == expected and all(held_out in row for row in rows)
    # the baseline's prior is what the model trained on: the other recordings, every split pooled
    import numpy as np

    trained = [label for label, name in zip(pooled["label"], pooled["recording"]) if name != held_out]
    names = pooled.features["label"].names
    assert result["baseline"]["majority_class"] == names[int(np.argmax(np.bincount(trained)))]
    assert result["dataset"]["held_out_recordings"] == [held_out]
    assert f"the held-out recordings {held_out}" in (tmp_path / "eval" / "report.md").read_text()

    (model_dir / "recipe.yaml").write_text("eval_recordings: [NOT_A_RECORDING]\n")
    with pytest.raises(ValueError, match="NOT_A_RECORDING"):
        evaluate(model_dir, converted_dataset, tmp_path / "eval2", progress=False)


def test_people_answers_voted_into_keyframes_when_the_recipe_says_so(tiny_model_dir, converted_dataset, tmp_path):
    """A model whose recipe scored keyframes by its people's votes (`eval_target: keyframe`) is evaluated so too."""
    import shutil

    from thermal_hf.data.convert import load_converted
    from thermal_hf.evaluate import evaluate

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    people = load_converted(converted_dataset)["validation"]
    keyframes = len(set(zip(people["recording"], people["image_id"])))
    assert keyframes < len(people)  # the fixture has keyframes with several people
    (model_dir / "recipe.yaml").write_text("target: person\neval_target: keyframe\n")
    result = evaluate(model_dir, converted_dataset, tmp_path / "eval", progress=False)
    assert result["num_samples"] == keyframes and result["per_person"]["num_samples"] == len(people)
    assert sum(m["support"] for m in result["per_class"].values()) == keyframes
    assert f"scored per keyframe ({keyframes} keyframes, {len(people)} people in all)" in (tmp_path / "eval" / "report.md").read_text()
    assert len((tmp_path / "eval" / "predictions.csv").read_text().splitlines()) == len(people) + 1  # per person


def test_test_time_views_override_the_models_own_for_the_evaluation(trained_model_dir, converted_dataset, evaluated,
                                                                      tmp_path, capsys):
    """`--test_time_views 4`: each clip's probabilities are the mean over the clip, its mirrors and its turn by 180
    degrees (checked by hand on the model), recorded in metrics.json; the saved model is not changed."""
    from thermal_hf.data.convert import load_converted
    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastForVideoClassification,
        ThermalVideoProcessor,
    )
    from thermal_hf.training.data import ThermalClipDataset

    config_before = (trained_model_dir / "config.json").read_text()
    out = tmp_path / "views4"
    assert main(["--model", str(trained_model_dir), "--dataset", str(converted_dataset), "--output_dir", str(out),
                 "--device", "cpu", "--test_time_views", "4"]) == 0
    assert json.loads((out / "metrics.json").read_text())["model"]["test_time_views"] == 4
    assert json.loads((evaluated / "metrics.json").read_text())["model"]["test_time_views"] == 1
    assert (trained_model_dir / "config.json").read_text() == config_before
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = json.loads((out / "metrics.json").read_text())["label_names"]
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])

    model = ThermalSlowFastForVideoClassification.from_pretrained(trained_model_dir).eval()
    clips = ThermalClipDataset(load_converted(converted_dataset)["validation"],
                               ThermalVideoProcessor.from_pretrained(trained_model_dir))
    batch = torch.stack([clips[i]["pixel_values"] for i in range(len(clips))])
    with torch.no_grad():
        views = [batch, batch.flip(-1), batch.flip(-2), batch.flip(-1).flip(-2)]
        by_hand = torch.stack([torch.softmax(model(v).logits, -1) for v in views]).mean(0).numpy()
        single = torch.softmax(model(batch).logits, -1).numpy()
    np.testing.assert_allclose(probs, by_hand, atol=2e-5)
    assert np.abs(by_hand - single).max() > 1e-3
    # 8 views turn the clip by 90 degrees: a model with a non-square image_size says so, and nothing is written
    assert main(["--model", str(trained_model_dir), "--dataset", str(converted_dataset), "--output_dir",
                 str(tmp_path / "views8"), "--test_time_views", "8"]) == 2
    assert "square image_size" in capsys.readouterr().err and not (tmp_path / "views8" / "metrics.json").exists()


def test_missing_model_or_dataset_folder_is_named(tiny_model_dir, converted_dataset, tmp_path, monkeypatch, capsys):
    """A typo in --model or --dataset says which folder is missing (not a Hub connection error, not 'neither')."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("a missing local folder must not be looked up on the Hub")

    monkeypatch.setattr(transformers.AutoModelForVideoClassification, "from_pretrained", refuse)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    assert main(["--model", "outputs/nonexistent", "--dataset", str(converted_dataset), "--output_dir", "out"]) == 2
    assert "no model folder at outputs/nonexistent" in capsys.readouterr().err
    monkeypatch.undo()

    missing = tmp_path / "nonexistent"
    assert main(["--model", str(tiny_model_dir), "--dataset", str(missing), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"dataset {missing}: folder not found" in err and "neither" not in err
    # A folder that exists but is no dataset keeps its own message.
    assert main(["--model", str(tiny_model_dir), "--dataset", str(tmp_path / "outputs"), "--output_dir",
                 str(tmp_path / "o")]) == 2
    assert "neither a converted thermal-hf dataset" in capsys.readouterr().err


def test_windows_the_model_was_not_made_for_are_refused(tiny_model_dir, synthetic_root, tmp_path, capsys):
    """A model of consecutive frames scored on a folder resampled at 2 frames/s (or the other way round) would
    be scored on windows it never saw: refused, naming both values."""
    from thermal_hf.data.convert import convert_dataset

    resampled = tmp_path / "resampled"
    convert_dataset(synthetic_root, resampled, num_frames=16, frame_rate=2.0)
    assert main(["--model", str(tiny_model_dir), "--dataset", str(resampled), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "holds windows made with frame_rate 2.0, but frame_rate none (consecutive recorded frames) were asked" in err
    assert "(the model)" in err and "the model takes the windows it was trained on" in err and "recipe" not in err
    assert not (tmp_path / "o").exists()


def test_an_earlier_evaluation_is_kept_unless_overwrite(trained_model_dir, converted_dataset, evaluated, tmp_path,
                                                         capsys):
    out = tmp_path / "again"
    shutil.copytree(evaluated, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = ["--model", str(trained_model_dir), "--dataset", str(converted_dataset), "--output_dir", str(out),
            "--device", "cpu", "--split", "train"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--output_dir {out} holds an earlier evaluation (metrics.json, report.md" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["dataset"]["split"] == "train"


def test_ctrl_c_while_scoring_writes_nothing_and_says_so(trained_model_dir, converted_dataset, tmp_path, capsys,
                                                         monkeypatch):
    import thermal_hf.training.metrics as metrics

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(metrics, "compute_classification_metrics", interrupted)
    out = tmp_path / "eval"
    assert main(["--model", str(trained_model_dir), "--dataset", str(converted_dataset), "--output_dir", str(out),
                 "--device", "cpu"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: the results are written to {out} only once every clip is scored" in err
    assert not out.exists() or not any(out.iterdir())
