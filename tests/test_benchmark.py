"""`thermal-hf benchmark`: fold planning, aggregation math, honest splits, coverage, reproducibility, CLI errors.

The end-to-end tests train the tiny recipe for one step on a dataset smaller than the shared `synthetic_root`
(4 recordings SY01_R1, SY01_R2, SY02_R1, SY02_R2 with 2 keyframes each): evaluating that fixture's ~120 clips per
fold would take about a minute on 2 cores, and these tests only need every recording to hold a few clips.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from thermal_hf.benchmark import aggregate, main, plan_folds, recording_group, render_markdown
from thermal_hf.errors import RecipeError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "recipes" / "tiny.yaml"


# ---------------------------------------------------------------------------------------------------------------
# Fold planning (no data, no training)
# ---------------------------------------------------------------------------------------------------------------
def test_grouped_holds_out_the_last_recording_of_each_group_in_natural_order():
    names = ["SL18_R10", "SL14_R1", "SL14_R4", "SL18_R2", "SL14_R2", "SL18_R4", "SL14_R1"]
    (fold,) = plan_folds(names, "grouped")
    assert fold.test_recordings == ["SL14_R4", "SL18_R10"]  # R10 after R4: natural, not lexicographic, order
    assert fold.train_recordings == ["SL14_R1", "SL14_R2", "SL18_R2", "SL18_R4"]
    assert recording_group("SL14_R4") == "SL14"


def test_grouped_rules_and_errors():
    # a group with one recording is held out whole: that room is never trained on
    (fold,) = plan_folds(["A_R1", "A_R2", "B_R1"], "grouped")
    assert fold.test_recordings == ["A_R2", "B_R1"] and fold.train_recordings == ["A_R1"]
    (fold,) = plan_folds(["A_R1", "A_R2", "B_R1"], "grouped", eval_recordings=["A_R1"])
    assert fold.name == "A_R1" and fold.train_recordings == ["A_R2", "B_R1"]
    with pytest.raises(RecipeError, match="nothing is left to train on"):
        plan_folds(["A_R1", "B_R1"], "grouped")
    with pytest.raises(RecipeError, match="unknown recording.*NOPE"):
        plan_folds(["A_R1", "A_R2"], "grouped", eval_recordings=["NOPE"])


def test_leave_one_recording_out_and_given_folds():
    folds = plan_folds(["B_R1", "A_R2", "A_R1"], "leave_one_recording_out")
    assert [f.name for f in folds] == ["A_R1", "A_R2", "B_R1"]
    for fold in folds:
        assert fold.test_recordings == [fold.name]
        assert sorted(fold.train_recordings + fold.test_recordings) == ["A_R1", "A_R2", "B_R1"]
    with pytest.raises(RecipeError, match="at least 2 recordings"):
        plan_folds(["A_R1"], "leave_one_recording_out")
    (given,) = plan_folds(["A_R1", "A_R2"], "given")
    assert given.name == "given" and given.test_recordings is None
    with pytest.raises(RecipeError, match="only applies to --protocol grouped"):
        plan_folds(["A_R1", "A_R2"], "given", eval_recordings=["A_R1"])
    with pytest.raises(RecipeError, match="unknown protocol 'random'"):
        plan_folds(["A_R1", "A_R2"], "random")


# ---------------------------------------------------------------------------------------------------------------
# Aggregation on hand-made logits
# ---------------------------------------------------------------------------------------------------------------
NAMES = ["a-x", "a-y", "b-z"]  # coarse groups a (classes 0, 1) and b (class 2)


def _fold(labels, logits):
    return {"labels": np.array(labels), "logits": np.array(logits, dtype=float)}


def _hand_made():
    # two folds (labels [0, 1] and [2, 2]) x two seeds
    seed0 = [_fold([0, 1], [[2, 0, 0], [0, 2, 0]]), _fold([2, 2], [[0, 0, 2], [2, 0, 0]])]  # predicts 0 1 | 2 0
    seed1 = [_fold([0, 1], [[2, 0, 0], [1, 0, 0]]), _fold([2, 2], [[0, 0, 2], [0, 0, 3]])]  # predicts 0 0 | 2 2
    train_counts = [[1, 5, 0], [3, 3, 4]]  # majority: class 1, then class 2 (but group a is the larger group)
    return [seed0, seed1], train_counts


def test_aggregate_per_seed_mean_std_and_pooled_recall():
    predictions, train_counts = _hand_made()
    agg = aggregate(NAMES, predictions, train_counts)
    s0, s1 = agg["per_seed"]
    assert s0["top1_accuracy"] == s1["top1_accuracy"] == 0.75  # pooled over the two folds: 3 of 4 clips
    assert s0["mean_class_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert s1["mean_class_accuracy"] == pytest.approx((1 + 0 + 1) / 3)
    assert agg["mean"]["mean_class_accuracy"] == pytest.approx(0.75)
    assert agg["std"]["mean_class_accuracy"] == pytest.approx((5 / 6 - 2 / 3) / np.sqrt(2))  # sample std, ddof 1
    assert agg["std"]["top1_accuracy"] == 0.0
    # coarse: seed 0 gets clip 4 (b) wrong, seed 1 all right
    assert s0["coarse_top1_accuracy"] == 0.75 and s1["coarse_top1_accuracy"] == 1.0
    recall = agg["per_class_recall"]
    assert recall["a-x"] == {"recall": 1.0, "support": 1}
    assert recall["a-y"] == {"recall": 0.5, "support": 1}  # right in seed 0, wrong in seed 1
    assert recall["b-z"] == {"recall": 0.75, "support": 2}  # 1 of 2, then 2 of 2
    assert agg["coarse_per_class_recall"]["b"] == {"recall": 0.75, "support": 2}


def test_results_md_names_every_environment_its_runs_trained_in():
    predictions, train_counts = _hand_made()
    results = {"recipe": "r.yaml", "protocol": "grouped", "seeds": [0, 1], "command": "thermal-hf benchmark r.yaml",
               "folds": [{"name": "A+B", "test_recordings": ["A"], "train_recordings": ["B"], "test_samples": 4,
                          "train_samples": 4}],
               "aggregate": aggregate(NAMES, predictions, train_counts),
               "runs": [{"environment": {"torch": "2.14.1", "transformers": "5.24.0", "numpy": "2.4.6",
                                         "device": "cpu: AVX512, 2 threads"}},
                        {"environment": {"torch": "2.14.1", "transformers": "5.24.0", "numpy": "2.4.6",
                                         "device": "cuda: NVIDIA H100 80GB HBM3"}}]}
    md = render_markdown(results)
    assert "Mean class accuracy per seed: 0: 83.3, 1: 66.7." in md
    assert ("Runs trained in different environments (the same recipe and seed can train differently in each): "
            "torch 2.14.1, transformers 5.24.0, numpy 2.4.6, cpu: AVX512, 2 threads; torch 2.14.1, transformers "
            "5.24.0, numpy 2.4.6, cuda: NVIDIA H100 80GB HBM3.") in md
    results["runs"] = [{"environment": None}, {}]  # runs from before environments were recorded
    assert "Trained with not recorded." in render_markdown(results)


def test_aggregate_ensemble_averages_probabilities_clip_by_clip():
    predictions, train_counts = _hand_made()
    agg = aggregate(NAMES, predictions, train_counts)
    # clip 2: softmax(0,2,0) and softmax(1,0,0) average to class 1 (0.50 vs 0.34); clip 4: softmax(2,0,0) and
    # softmax(0,0,3) average to class 2 (0.51 vs 0.42). Averaging logits instead would tie or differ.
    assert agg["ensemble"]["top1_accuracy"] == 1.0
    assert agg["ensemble"]["mean_class_accuracy"] == 1.0
    assert agg["mean"]["top1_accuracy"] == 0.75


def test_aggregate_majority_baseline_from_each_folds_training_split():
    predictions, train_counts = _hand_made()
    base = aggregate(NAMES, predictions, train_counts)["baseline"]
    # fold 0 answers class 1 (labels 0, 1: one right), fold 1 answers class 2 (labels 2, 2: both right)
    assert base["top1_accuracy"] == 0.75
    assert base["mean_class_accuracy"] == pytest.approx((0 + 1 + 1) / 3)
    # coarse: fold 0's prior says group a (right twice); fold 1's prior puts 6 of 10 in group a, but the coarse
    # answer is the group of the majority class (b-z), as for the model: both b clips are right
    assert base["coarse_top1_accuracy"] == 1.0
    assert aggregate(NAMES, predictions, train_counts)["majority_class_per_fold"] == ["a-y", "b-z"]


def test_aggregate_refuses_seeds_that_evaluated_other_clips():
    predictions, train_counts = _hand_made()
    predictions[1][0] = _fold([1, 0], [[2, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="fold 0: seed 1"):
        aggregate(NAMES, predictions, train_counts)


# ---------------------------------------------------------------------------------------------------------------
# End to end (tiny recipe, one training step per run)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from thermal_hf.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("bench_data")
    raw = generate_dataset(root / "raw", recordings=4, seed=0, frames_per_recording=64, keyframes_per_recording=2)
    return raw, root / "cache"  # one conversion (cache) shared by every run of this module


def _extras(cache):
    return ["--", "--max_steps", "1", "--num_frames", "8", "--per_device_train_batch_size", "2",
            "--per_device_eval_batch_size", "8", "--cache_dir", str(cache)]


def _bench(small_dataset, out, protocol, *flags):
    raw, cache = small_dataset
    argv = [str(TINY), "--dataset", str(raw), "--protocol", protocol, "--output", str(out), *flags, *_extras(cache)]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def _predictions(run):
    return json.loads((Path(run["output_dir"]) / "eval_predictions.json").read_text())


def _all_samples(results):
    from thermal_hf.data.convert import load_converted

    dataset = load_converted(results["converted_dataset"])
    return Counter(
        (r, i, k) for split in dataset.values()
        for r, i, k in zip(split["recording"], split["image_id"], split["keyframe_index"])
    )


@pytest.mark.slow
def test_grouped_seeds_reuse_and_reproducibility(small_dataset, tmp_path, capsys):
    out = tmp_path / "grouped"
    first = _bench(small_dataset, out, "grouped", "--seeds", "2")
    (fold,) = first["folds"]
    assert fold["test_recordings"] == ["SY01_R2", "SY02_R2"]
    assert not set(fold["test_recordings"]) & set(fold["train_recordings"])
    assert sorted(fold["test_recordings"] + fold["train_recordings"]) == sorted({k[0] for k in _all_samples(first)})
    for run in first["runs"]:  # what was really evaluated: held-out recordings only, every clip of them
        assert set(_predictions(run)["recording"]) <= set(fold["test_recordings"])
        assert len(_predictions(run)["labels"]) == fold["test_samples"]
    # seeds: recipe seed (0) + i, each run trained with its own
    assert first["seeds"] == [0, 1] and [r["seed"] for r in first["runs"]] == [0, 1]
    import yaml

    saved = [yaml.safe_load((Path(r["output_dir"]) / "recipe.yaml").read_text()) for r in first["runs"]]
    assert [s["seed"] for s in saved] == [0, 1]
    assert all(s["load_best_model_at_end"] is False and s["split_by"] == "annotations" for s in saved)
    assert _predictions(first["runs"][0])["logits"] != _predictions(first["runs"][1])["logits"]
    md = (out / "results.md").read_text()
    assert "| model, mean ± std over 2 seeds |" in md and "majority baseline" in md and "thermal-hf benchmark" in md
    per_seed = first["aggregate"]["per_seed"]
    assert (f"Mean class accuracy per seed: 0: {100 * per_seed[0]['mean_class_accuracy']:.1f}, "
            f"1: {100 * per_seed[1]['mean_class_accuracy']:.1f}.") in md
    # where each run trained, recorded beside its seconds and named once in results.md (both runs: this process)
    import torch

    environments = [r["environment"] for r in first["runs"]]
    assert environments[0] == environments[1] and environments[0]["torch"] == torch.__version__
    assert json.loads((Path(first["runs"][0]["output_dir"]) / "benchmark_run.json").read_text())["environment"] == environments[0]
    assert md.count(f"Trained with torch {torch.__version__}, ") == 1
    seed0_logits = _predictions(first["runs"][0])["logits"]

    # the same command again: the finished run is reused, not retrained
    capsys.readouterr()
    again = _bench(small_dataset, out, "grouped", "--seeds", "1")
    assert again["runs"][0]["reused"] is True and "(reused)" in capsys.readouterr().out
    assert again["runs"][0]["environment"] == environments[0]  # a reused run keeps where it trained
    assert again["aggregate"]["per_seed"][0] == first["aggregate"]["per_seed"][0]

    # the same folder under another spelling (relative, from its parent) is the same run
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        moved = _bench(small_dataset, Path("grouped"), "grouped", "--seeds", "1")
    assert moved["runs"][0]["reused"] is True, capsys.readouterr().out

    # a rerun killed outright (kill -9) left the finished run set aside beside a half-made one: the finished run is
    # given back and reused, not trained again
    run0 = Path(first["runs"][0]["output_dir"])
    run0.rename(run0.with_name(".seed0.previous"))
    run0.mkdir()
    (run0 / "trainer_state.json").write_text("{}")
    capsys.readouterr()
    killed = _bench(small_dataset, out, "grouped", "--seeds", "1")
    printed = capsys.readouterr().out
    assert killed["runs"][0]["reused"] is True and "given back" in printed, printed
    assert not run0.with_name(".seed0.previous").exists() and _predictions(killed["runs"][0])["logits"] == seed0_logits

    # --overwrite retrains: the same seed gives the same logits and metrics
    rerun = _bench(small_dataset, out, "grouped", "--seeds", "1", "--overwrite")
    assert rerun["runs"][0]["reused"] is False
    assert _predictions(rerun["runs"][0])["logits"] == seed0_logits
    assert rerun["aggregate"]["per_seed"][0] == first["aggregate"]["per_seed"][0]


@pytest.mark.slow
def test_a_run_made_on_other_data_is_trained_again(small_dataset, tmp_path, capsys):
    """Reuse checks the data as well as the recipe: relabelled annotations (same files, same clip counts) must not
    be scored with the predictions of a model trained on the old labels."""
    raw, cache = small_dataset
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    argv = [str(TINY), "--dataset", str(copy), "--protocol", "given", "--output", str(tmp_path / "b"), *_extras(cache)]
    assert main(argv) == 0
    assert main(argv) == 0 and "(reused)" in capsys.readouterr().out
    for split in ("train", "val"):
        path = copy / "annotations" / f"{split}.json"
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        for ann in data["annotations"]:
            ann["category_id"] = 1  # everybody stands now
            ann["category_name"] = names[1]
        path.write_text(json.dumps(data))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "is trained again: it was made on other data" in out and "(reused)" not in out
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["runs"][0]["reused"] is False
    assert set(_predictions(results["runs"][0])["labels"]) == {1}


@pytest.mark.slow
def test_counts_are_named_after_the_converted_folders_rows(small_dataset, tmp_path, capsys):
    """A converted folder is used as made: keyframe rows are counted as clips, whatever the recipe's target."""
    from thermal_hf.data.convert import convert_dataset

    raw, cache = small_dataset
    converted = tmp_path / "keyframes"
    convert_dataset(raw, converted, target="keyframe", num_frames=8, show_progress=False)
    out = tmp_path / "b"
    argv = [str(TINY), "--dataset", str(converted), "--protocol", "grouped", "--output", str(out), "--seeds", "1",
            *_extras(cache)]
    with pytest.warns(UserWarning, match="already converted with different options"):
        assert main(argv) == 0  # the tiny recipe says target: person
    (fold,) = json.loads((out / "results.json").read_text())["folds"]
    assert (fold["train_unit"], fold["test_unit"]) == ("clips", "clips")
    assert f"({fold['train_samples']} clips)" in (out / "results.md").read_text()
    assert "people" not in capsys.readouterr().out


@pytest.mark.slow
def test_leave_one_recording_out_predicts_every_sample_once(small_dataset, tmp_path):
    results = _bench(small_dataset, tmp_path / "loro", "leave_one_recording_out", "--seeds", "1")
    folds = results["folds"]
    assert [f["name"] for f in folds] == ["SY01_R1", "SY01_R2", "SY02_R1", "SY02_R2"]
    pooled = Counter()
    for fold, run in zip(folds, results["runs"]):
        predictions = _predictions(run)
        assert set(predictions["recording"]) == {fold["name"]}
        pooled.update(zip(predictions["recording"], predictions["image_id"], predictions["keyframe_index"]))
    # a multiset: a keyframe with two people is two samples with the same (recording, image_id, keyframe_index)
    assert pooled == _all_samples(results)
    assert sum(results["aggregate"]["per_class_recall"][n]["support"] for n in results["label_names"]) == sum(pooled.values())


@pytest.mark.slow
def test_people_answers_voted_into_keyframes(small_dataset, tmp_path):
    # target person + eval_target keyframe: trained on each annotated person (cut around their blob), scored once
    # per keyframe of the held-out recordings, its people's answers voted as its label is made from theirs.
    from thermal_hf.training.keyframe_vote import majority

    raw, cache = small_dataset
    out = tmp_path / "kf"
    assert main([str(TINY), "--dataset", str(raw), "--protocol", "grouped", "--output", str(out), "--seeds", "1",
                 *_extras(cache), "--target", "person", "--eval_target", "keyframe", "--person_crop_size", "16", "--image_size", "32", "32",
                 "--random_rotation_degrees", "90"]) == 0
    results = json.loads((out / "results.json").read_text())
    (fold,) = results["folds"]
    (run,) = results["runs"]
    from thermal_hf.data.convert import load_converted

    dataset = load_converted(results["converted_dataset"])
    people = {}  # keyframe -> its people's labels
    for split in dataset.values():
        for r, i, label in zip(split["recording"], split["image_id"], split["label"]):
            if r in fold["test_recordings"]:
                people.setdefault((r, i), []).append(label)
    assert fold["test_samples"] == len(people) <= sum(map(len, people.values()))
    predictions = _predictions(run)
    keys = list(zip(predictions["recording"], predictions["image_id"]))
    assert sorted(keys) == sorted(people) and "object_id" not in predictions  # one row per keyframe
    assert predictions["labels"] == [majority(np.asarray(people[k]), len(results["label_names"])) for k in keys]
    saved = json.loads((Path(run["output_dir"]) / "video_preprocessor_config.json").read_text())
    assert saved["person_crop_size"] == 16 and saved["person_threshold"] == 3.0

    # bench/exp_saved_runs.py re-scores the saved run as the benchmark scored it (so its other lines compare)
    import contextlib
    import importlib.util
    import io

    spec = importlib.util.spec_from_file_location("exp_saved_runs", REPO / "bench" / "exp_saved_runs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        script.main([str(out)])
    found = {m.group(1): (float(m.group(2)), float(m.group(3)))
             for m in re.finditer(r"^(\S.*?)\s+seed0:\s+([\d.]+) /\s+([\d.]+)", printed.getvalue(), re.MULTILINE)}
    assert set(found) == {"classification head", "8 test-time views"}
    assert found["classification head"][0] == pytest.approx(100 * run["metrics"]["mean_class_accuracy"], abs=0.051)
    assert found["classification head"][1] == pytest.approx(100 * run["metrics"]["top1_accuracy"], abs=0.051)

    # --detected-people: each keyframe answered from the blobs the processor's detector finds, no annotations
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        script.main([str(out), "--detected-people"])
    text = printed.getvalue()
    assert {"largest blob found", "every blob found, voted"} <= set(re.findall(r"^(\S.*?)\s+seed0:", text, re.MULTILINE))
    counted = re.search(r"(\d+) blobs found in (\d+) keyframes for their (\d+) annotated people", text)
    assert int(counted.group(2)) == fold["test_samples"] and int(counted.group(1)) >= int(counted.group(2))
    # the largest blob's answer is what predict / the pipeline compute: the processor's own crop, no box
    import torch
    from datasets import concatenate_datasets

    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastForVideoClassification,
        ThermalVideoProcessor,
    )
    from thermal_hf.training.keyframe_vote import keyframe_groups

    model = ThermalSlowFastForVideoClassification.from_pretrained(run["output_dir"]).eval()
    processor = ThermalVideoProcessor.from_pretrained(run["output_dir"])
    pooled = concatenate_datasets(list(dataset.values()))  # the held-out rows, from whichever split holds them
    held = pooled.select([i for i, r in enumerate(pooled["recording"]) if r in fold["test_recordings"]])
    groups = keyframe_groups(held["recording"], held["image_id"])
    largest, voted, blobs = script.detected_people_scores(model, processor, held, groups)
    assert largest.shape == voted.shape == (len(people), len(results["label_names"])) and len(blobs) == len(people)
    first_rows = np.unique(groups, return_index=True)[1]
    clips = [processor.normalize(processor.fit_length(processor.crop_to_person(
        processor.clean(np.asarray(held[int(i)]["frames"], dtype=np.float32))))) for i in first_rows]
    with torch.no_grad():
        expected = model(torch.from_numpy(np.ascontiguousarray(np.stack(clips), dtype=np.float32))).logits.double().numpy()
    np.testing.assert_allclose(largest, expected, rtol=1e-5, atol=1e-5)
    # a keyframe with one blob has one voter: its vote is the largest blob's answer
    single = np.asarray(blobs) == 1
    assert np.array_equal(voted[single].argmax(1), largest[single].argmax(1))


# ---------------------------------------------------------------------------------------------------------------
# CLI errors
# ---------------------------------------------------------------------------------------------------------------
def test_cli_errors_exit_2_naming_the_problem(small_dataset, tmp_path, capsys):
    raw, cache = small_dataset
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    held_out_recipe = tmp_path / "held_out.yaml"
    held_out_recipe.write_text(TINY.read_text() + "eval_recordings: [SY01_R2]\n")
    cases = [
        ([str(TINY), "--protocol", "random"], "invalid choice: 'random'"),
        ([str(tmp_path / "nope.yaml"), "--protocol", "grouped"], "nope.yaml: file not found"),
        ([str(TINY), "--protocol", "grouped", "--dataset", str(tmp_path / "missing")], "missing: folder not found"),
        ([str(TINY), "--protocol", "grouped", "--dataset", str(raw), "--", "--output_dir", "x"], "--output_dir after `--`"),
        ([str(TINY), "--protocol", "grouped", "--dataset", str(raw), "--eval_recordings", "SY09_R1",
          "--output", str(tmp_path / "o"), *_extras(cache)], "unknown recording(s) SY09_R1"),
        ([str(TINY), "--protocol", "grouped", "--seeds", "0"], "--seeds must be at least 1"),
        ([str(TINY), "--protocol", "grouped", "--seed", "2"],  # not an abbreviation of --seeds
         "unrecognized arguments: --seed 2; recipe keys go after `--`"),
        ([str(TINY), "--protocol", "grouped", "--num_train_epochs", "1"],
         "unrecognized arguments: --num_train_epochs 1; recipe keys go after `--`"),
        ([str(TINY), "--protocol", "grouped", "--dataset", str(raw), "--output", str(a_file), *_extras(cache)],
         "an existing file; give a folder"),
        ([str(held_out_recipe), "--protocol", "given", "--dataset", str(raw), "--output", str(tmp_path / "o"),
          *_extras(cache)], "recipe key 'eval_recordings' is set in"),
        # the report counts every fold's training clips: a cut training split would be reported as the whole
        ([str(TINY), "--protocol", "grouped", "--dataset", str(raw), "--output", str(tmp_path / "o"), *_extras(cache),
          "--max_train_samples", "3"], "recipe key 'max_train_samples' is set: a benchmark trains every fold"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, (argv, err)
    assert not (tmp_path / "o").exists()  # nothing trained, nothing written


def test_saved_runs_script_reads_the_given_fold_as_the_benchmark_split_it(small_dataset, tmp_path):
    """bench/exp_saved_runs.py on a `--protocol given` folder: the "given" fold is the annotation files' own split
    (not a recording named "given"), so the re-scored head gives the benchmark's own figures. The tiny recipe's
    whole, non-square frame cannot be turned by 90 degrees: no 8-view line, and no error."""
    import contextlib
    import importlib.util
    import io

    results = _bench(small_dataset, tmp_path / "given", "given", "--seeds", "1")
    (run,) = results["runs"]
    spec = importlib.util.spec_from_file_location("exp_saved_runs", REPO / "bench" / "exp_saved_runs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        script.main([str(tmp_path / "given")])
    assert "8 test-time views" not in printed.getvalue()
    head = re.search(r"^classification head\s+seed0:\s+([\d.]+) /\s+([\d.]+)", printed.getvalue(), re.MULTILINE)
    assert float(head.group(1)) == pytest.approx(100 * run["metrics"]["mean_class_accuracy"], abs=0.051)
    assert float(head.group(2)) == pytest.approx(100 * run["metrics"]["top1_accuracy"], abs=0.051)
    # The re-trained classifiers, the head's average with the balanced one and the batch norms of the test
    # recording: each scored, as percentages.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        script.main([str(tmp_path / "given"), "--retrain-classifier", "--passes", "1", "--adapt-batch-norm"])
    for name in ("re-trained classifier", "re-trained classifier, balanced", "head + balanced classifier, averaged",
                 "batch norm of the test recording"):
        line = re.search(rf"^{re.escape(name)}\s+seed0:\s+([\d.]+) /\s+([\d.]+)", printed.getvalue(), re.MULTILINE)
        assert line is not None, name
        assert 0 <= float(line.group(1)) <= 100 and 0 <= float(line.group(2)) <= 100

    # The re-estimated statistics are a copy's: the saved model keeps its own.
    import torch

    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastForVideoClassification,
        ThermalVideoProcessor,
    )
    from thermal_hf.parser import parse_recipe
    from thermal_hf.train import load_data

    model = ThermalSlowFastForVideoClassification.from_pretrained(run["output_dir"]).eval()
    processor = ThermalVideoProcessor.from_pretrained(run["output_dir"])
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    saved_mean = norm.running_mean.clone()
    parsed = parse_recipe([str(Path(run["output_dir"]) / "recipe.yaml"), "--output_dir", str(tmp_path / "o"),
                           "--report_to", "none", "--split_by", "annotations"])
    data = load_data(parsed.data_args, parsed.training_args)
    adapted = script.adapted_batch_norm_logits(model, processor, data.eval)
    assert adapted.shape == (len(data.eval), model.config.num_labels) and np.isfinite(adapted).all()
    assert torch.equal(norm.running_mean, saved_mean)
    # ... and the re-estimated statistics change the answers' logits (the head's: features_and_logits)
    assert not np.allclose(adapted, script.features_and_logits(model, processor, data.eval)[1], atol=1e-4)
    # A re-trained classifier does not depend on torch's seed at the time (the augmented passes are seeded).
    # (the tiny recipe augments nothing: flips and noise here, so that the draw matters)
    augmentation = dataclasses.replace(parsed.data_args.augmentation_config(), horizontal_flip_prob=0.5,
                                       sensor_noise_std=0.5)
    first = script.retrained_classifier_scores(model, processor, data, augmentation, passes=1, balanced=True)
    torch.manual_seed(1234)
    np.testing.assert_array_equal(
        script.retrained_classifier_scores(model, processor, data, augmentation, passes=1, balanced=True), first)


def test_a_failed_rerun_gives_the_earlier_run_back_and_exits_1(tmp_path, monkeypatch, capsys):
    from thermal_hf import train
    from thermal_hf.benchmark import train_once
    from thermal_hf.errors import TrainingDivergedError

    run_dir = tmp_path / "fold" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "eval_predictions.json").write_text("earlier run")

    def diverge(parsed):
        (run_dir).mkdir()  # the new run had begun writing
        (run_dir / "trainer_state.json").write_text("{}")
        raise TrainingDivergedError("training diverged at step 2")

    monkeypatch.setattr(train, "run", diverge)
    with pytest.raises(TrainingDivergedError):
        train_once(None, run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["eval_predictions.json"]
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["seed0"]  # nothing set aside is left
    monkeypatch.setattr(train, "run", lambda parsed: (_ for _ in ()).throw(KeyboardInterrupt()))  # Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        train_once(None, run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["eval_predictions.json"]
    # a process killed outright left the earlier run set aside beside a half-made one: the earlier one comes back
    run_dir.rename(run_dir.with_name(".seed0.previous"))
    run_dir.mkdir()
    (run_dir / "trainer_state.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        train_once(None, run_dir)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["seed0"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["eval_predictions.json"]

    monkeypatch.setattr("thermal_hf.benchmark.benchmark", lambda *a, **k: (_ for _ in ()).throw(
        TrainingDivergedError("training diverged at step 2")))
    assert main([str(TINY), "--protocol", "grouped", "--output", str(tmp_path / "b")]) == 1
    assert capsys.readouterr().err.startswith("error: training diverged at step 2")


def test_reuse_compares_the_precision_a_run_trained_in_not_how_it_was_asked(tmp_path):
    import yaml

    from thermal_hf.benchmark import RUN_INFO_FILE, _recipe_text, parse, reuse_verdict

    run_dir = tmp_path / "seed0"
    run_dir.mkdir()
    parsed = parse([str(TINY), "--mixed_precision", "auto", "--output_dir", str(run_dir)])
    data = {"dataset": "/data", "conversion_sha256": "0"}
    (run_dir / "eval_predictions.json").write_text("{}")
    recipe = _recipe_text(parsed)
    assert recipe["mixed_precision"] == "auto"  # as asked
    would = parsed.training_args.mixed_precision  # what auto means here (no on a machine without a GPU)
    # a run saved before: its recipe.yaml recorded what auto resolved to on its machine
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump({**recipe, "mixed_precision": would}))
    (run_dir / RUN_INFO_FILE).write_text(json.dumps({"data": data}))
    assert reuse_verdict(run_dir, parsed, data) is None
    # a run that trained in another precision (another machine) is not reused
    other = "fp16" if would != "fp16" else "bf16"
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run_dir / RUN_INFO_FILE).write_text(json.dumps({"data": data, "mixed_precision": other}))
    assert reuse_verdict(run_dir, parsed, data) == f"it trained in {other} precision, this machine would train in {would}"
