"""Benchmark a recipe on recordings it has never seen, over several seeds.

    thermal-hf benchmark RECIPE --dataset DIR --protocol given|grouped|leave_one_recording_out [--seeds 3]
                         [--output BENCH_DIR] [--eval_recordings NAME ...] [--overwrite] [-- --key value ...]
    python -m thermal_hf.benchmark ...   (the same program)

Each run is an ordinary in-process `thermal_hf.train.run` of the recipe, with the recordings of one fold held
out (``--eval_recordings``) and ``seed`` = the recipe's seed + i for i = 0 .. seeds-1. Recipe overrides for every
run go after ``--`` (``-- --num_train_epochs 5 --learning_rate 0.01``); ``-- --seed 10`` moves the base seed.

Protocols (a recording is one HDF5 file, e.g. ``SL14_R3``; its group is the name before the last ``_``, i.e. the
sensor / room ``SL14``):

- ``given``: the dataset's own train / validation split (the users' annotation files). One fold. The users'
  split puts keyframes of the same recordings on both sides, so this is NOT a test on unseen recordings; it is
  here to compare with the numbers quoted so far.
- ``grouped``: one fixed recording-level split. From every group the LAST recording in natural sort order
  (``SL14_R4``, ``SL18_R4``) is held out and everything else is trained on; ``--eval_recordings A B`` names the
  held-out recordings instead. A group with a single recording is held out whole (its room is never trained on);
  at least one recording must be left to train on.
- ``leave_one_recording_out``: one fold per recording, that recording held out. The predictions of all folds
  are pooled (every clip is predicted exactly once per seed) and the metrics are computed on the pool.

What every run is forced to do, so that the figures are honest and the runs independent: ``split_by
annotations`` (every fold reuses one cached conversion; the pool is both annotation files),
``load_best_model_at_end false`` and no ``early_stopping`` callback (the reported model is the LAST epoch's: no
choice is ever made on the test recordings), ``save_strategy no``, ``report_to none``, ``push_to_hub false``,
``do_train`` and ``do_eval`` true. ``max_eval_samples`` and ``max_train_samples`` are refused (the test recordings
are evaluated whole, and each fold trains on all of its training recordings, as its report counts them).
``dataset``, ``eval_recordings``, ``output_dir`` and ``split_by`` belong to the benchmark: giving them after
``--`` is an error.

Reported, per seed on the pooled predictions, then as mean and std over seeds (sample std, ddof 1): mean class
accuracy (the headline: mean recall over the classes present), top-1, top-3, macro F1, and for two-level class
names (``lying down-lying with risk``) the same at the coarse level (the fine answer read as its group; top-3
ranks the groups by their best class, see `thermal_hf.training.metrics.coarse_scores`). Beside them:

- the seed ensemble: softmax probabilities averaged over the seeds, clip by clip, then the same metrics;
- the majority baseline: every test clip is scored with its fold's TRAINING class frequencies, so its top-1 is
  the most frequent training class (ties: lowest class id), its top-3 the three most frequent, and at the
  coarse level it answers that class's group; pooled over folds like the model;
- per-class recall pooled over seeds and folds, with the number of test clips of each class.

Outputs in BENCH_DIR (default ``outputs/benchmark/<recipe stem>/<protocol>``):

- ``<fold>/seed<k>/`` (k = 0 .. seeds-1, seed = the recipe's seed + k): each run's ordinary output folder (model, ``recipe.yaml``, ``eval_report.json``,
  ``eval_predictions.json``, ``class_distribution.json``) plus ``benchmark_run.json`` (its wall-clock seconds, the
  converted data it was made on, and its environment: python, torch, transformers and numpy versions, the device). A CPU run repeats itself to the bit
  on one machine; on another CPU or GPU the same recipe and seed can train differently, so results.md names them.
  ``<fold>`` is the held-out recording (leave_one_recording_out), the held-out recordings joined by ``+``
  (grouped) or ``given``.
- ``results.json``: the command, recipe, dataset, protocol, folds (train / test recordings, clip counts), every
  run (seed, seconds, environment, reused or not), per-seed metrics, mean, std, ensemble, baseline, pooled per-class recall,
  and the total wall-clock time.
- ``results.md``: a table ready for BENCHMARKS.md (rows: the model as mean +- std over seeds, the seed ensemble,
  the majority baseline), the per-class recall table, the mean class accuracy of every seed, the environment
  the runs trained in and the exact command; printed at the end.

A finished run (``eval_predictions.json`` present, its ``recipe.yaml`` equal to what would be run now, and its
``benchmark_run.json`` naming the same converted data: same folder, same conversion record) is reused, so an interrupted leave-one-recording-out benchmark continues where it stopped; ``--overwrite`` reruns
everything. Runs happen one after the other in one process (CPU or one GPU).

Examples::

    thermal-hf benchmark recipes/slowfast_r18_cpu.yaml --dataset ../shared/datasets/thermal_action_v1 --protocol grouped --seeds 3
    thermal-hf benchmark recipes/slowfast_r18_cpu.yaml --dataset ../shared/datasets/thermal_action_v1 --protocol leave_one_recording_out --seeds 3 -- --num_train_epochs 5
    thermal-hf benchmark recipes/demo.yaml --dataset data/tour --protocol grouped --eval_recordings SY01_R2 --seeds 2
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import CheckpointError, RecipeError, ThermalDataError, TrainingDivergedError

PROTOCOLS = ("given", "grouped", "leave_one_recording_out")
RUN_INFO_FILE = "benchmark_run.json"
#: recipe keys the benchmark sets from its own flags (refused after `--`).
MANAGED_KEYS = ("dataset", "eval_recordings", "output_dir", "split_by")
#: appended to every run's command line, so they win over the recipe and over the `--` overrides.
FORCED_OVERRIDES = (
    "--split_by", "annotations",
    "--load_best_model_at_end", "false",
    "--save_strategy", "no",
    "--report_to", "none",
    "--push_to_hub", "false",
    "--do_train", "true",
    "--do_eval", "true",
    "--show_predictions", "0",
)
#: metric name -> column header, in the order of the tables (mean class accuracy first: it is the headline).
FINE_METRICS = {"mean_class_accuracy": "mean class acc", "top1_accuracy": "top-1", "top3_accuracy": "top-3",
                "macro_f1": "macro F1"}
COARSE_METRICS = {"coarse_mean_class_accuracy": "coarse mean class acc", "coarse_top1_accuracy": "coarse top-1",
                  "coarse_top3_accuracy": "coarse top-3", "coarse_macro_f1": "coarse macro F1"}
TABLE_COARSE = ("coarse_mean_class_accuracy", "coarse_top1_accuracy")


# ---------------------------------------------------------------------------------------------------------------
# Folds
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Fold:
    """One train / test partition of the recordings; ``None`` recordings mean the dataset's own split (given)."""

    name: str  # the fold's folder name under BENCH_DIR
    test_recordings: list[str] | None
    train_recordings: list[str] | None
    test_samples: int | None = None  # filled from the dataset by `describe_folds`
    train_samples: int | None = None
    test_unit: str = "clips"  # what the counts count: "people" (person targets), "keyframes" (their votes)
    train_unit: str = "clips"


def natural_key(name: str) -> list:
    """Sort key that orders ``R2`` before ``R10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def recording_group(name: str) -> str:
    """``SL14_R3`` -> ``SL14``: the sensor / room a recording belongs to."""
    return name.rsplit("_", 1)[0]


def plan_folds(recordings, protocol: str, eval_recordings: list[str] | None = None) -> list[Fold]:
    """The folds of ``protocol`` over these recording names (see the module docstring for the rules)."""
    names = sorted(set(recordings), key=natural_key)
    if protocol not in PROTOCOLS:
        raise RecipeError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
    if eval_recordings:
        if protocol != "grouped":
            raise RecipeError(f"--eval_recordings only applies to --protocol grouped (not {protocol})")
        unknown = [name for name in eval_recordings if name not in names]
        if unknown:
            raise RecipeError(f"--eval_recordings: unknown recording(s) {', '.join(unknown)} (the dataset has "
                              f"{', '.join(names)})")
    if protocol == "given":
        return [Fold("given", None, None)]
    if protocol == "grouped":
        if eval_recordings:
            held_out = sorted(set(eval_recordings), key=natural_key)
        else:
            last_of_group = {recording_group(name): name for name in names}  # names are sorted: the last one wins
            held_out = sorted(last_of_group.values(), key=natural_key)
        train = [name for name in names if name not in held_out]
        if not train:
            how = ("leave at least one recording out of --eval_recordings" if eval_recordings else
                   "give --eval_recordings, or use a dataset with several recordings per group")
            raise RecipeError(f"protocol grouped holds out every recording ({', '.join(held_out)}); nothing is left "
                              f"to train on ({how})")
        return [Fold("+".join(held_out), held_out, train)]
    if len(names) < 2:
        raise RecipeError(f"protocol leave_one_recording_out needs at least 2 recordings; the dataset has {names}")
    return [Fold(name, [name], [other for other in names if other != name]) for name in names]


def describe_folds(folds: list[Fold], split_recordings: dict[str, list[str]], train_split: str, eval_split: str,
                   eval_split_recordings: dict[str, list[str]] | None = None) -> None:
    """Fill in the recordings of the `given` fold and every fold's clip counts from the dataset's ``recording``
    columns; test clips are counted in ``eval_split_recordings`` if given (one entry per keyframe when the
    people's answers are voted into keyframes, ``eval_target: keyframe``)."""
    eval_split_recordings = split_recordings if eval_split_recordings is None else eval_split_recordings

    def pooled(columns: dict[str, list[str]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for column in columns.values():
            for name in column:
                counts[name] = counts.get(name, 0) + 1
        return counts

    train_counts, test_counts = pooled(split_recordings), pooled(eval_split_recordings)
    for fold in folds:
        if fold.test_recordings is None:
            fold.train_recordings = sorted(set(split_recordings[train_split]), key=natural_key)
            fold.test_recordings = sorted(set(eval_split_recordings[eval_split]), key=natural_key)
            fold.train_samples = len(split_recordings[train_split])
            fold.test_samples = len(eval_split_recordings[eval_split])
        else:
            fold.test_samples = sum(test_counts.get(name, 0) for name in fold.test_recordings)
            fold.train_samples = sum(train_counts.get(name, 0) for name in fold.train_recordings)


# ---------------------------------------------------------------------------------------------------------------
# Aggregation (pure: numpy in, plain dicts out)
# ---------------------------------------------------------------------------------------------------------------
IDENTITY_COLUMNS = ("recording", "image_id", "keyframe_index")


def headline_metrics(scores: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
    """The benchmark's metrics (fine, and coarse for two-level class names) plus the full report under ``report``."""
    from .training.metrics import coarse_groups, coarse_scores, compute_classification_metrics, top_k_accuracy

    report = compute_classification_metrics(scores, labels, len(label_names), label_names)
    out = {key: report[key] for key in FINE_METRICS}
    groups = coarse_groups(label_names)
    if groups is not None and len(labels):
        coarse_names, fine_to_coarse = groups
        out["coarse_mean_class_accuracy"] = report["coarse_mean_class_accuracy"]
        out["coarse_top1_accuracy"] = report["coarse_accuracy"]
        out["coarse_top3_accuracy"] = top_k_accuracy(
            coarse_scores(scores, fine_to_coarse, len(coarse_names)), fine_to_coarse[labels], 3
        )
        out["coarse_macro_f1"] = report["coarse_macro_f1"]
    out["report"] = report
    return out


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "report"}


def _pooled_recall(per_class_reports: list[dict]) -> dict:
    """``{class: {recall, support}}``: correct / clips summed over the reports (seeds); support is per seed."""
    out = {}
    for name in per_class_reports[0]:
        support = sum(r[name]["support"] for r in per_class_reports)
        correct = sum(r[name]["recall"] * r[name]["support"] for r in per_class_reports)
        out[name] = {"recall": correct / support if support else None,
                     "support": support // len(per_class_reports)}
    return out


def aggregate(label_names: list[str], predictions: list[list[dict]], train_class_counts: list) -> dict:
    """Pool the folds of every seed and summarise over seeds.

    ``predictions[s][f]``: seed ``s``, fold ``f``: ``{"labels": (N,), "logits": (N, K)}`` (plus, optionally, the
    identity columns ``recording``, ``image_id``, ``keyframe_index``, which must match between seeds);
    ``train_class_counts[f]``: the class counts of fold ``f``'s training split (the majority baseline).
    Returns per_seed, mean, std, ensemble, baseline (each a dict of `headline_metrics` scalars), per_class_recall
    (fine, pooled over seeds and folds) and, for two-level names, coarse_per_class_recall.
    """
    num_seeds, num_folds = len(predictions), len(train_class_counts)
    if num_seeds == 0 or any(len(seed) != num_folds for seed in predictions):
        raise ValueError(f"predictions must hold {num_folds} folds for each of at least one seed")
    for f in range(num_folds):
        first = predictions[0][f]
        for s in range(1, num_seeds):
            other = predictions[s][f]
            same = np.array_equal(first["labels"], other["labels"]) and all(
                list(first[c]) == list(other[c]) for c in IDENTITY_COLUMNS if c in first and c in other
            )
            if not same:  # averaging probabilities clip by clip needs the same clips in the same order
                raise ValueError(f"fold {f}: seed {s} evaluated other clips (or another order) than seed 0")

    labels = np.concatenate([np.asarray(p["labels"], dtype=np.int64) for p in predictions[0]])
    pooled_logits = [np.concatenate([np.asarray(p["logits"], dtype=np.float64) for p in seed]) for seed in predictions]
    per_seed = [headline_metrics(logits, labels, label_names) for logits in pooled_logits]

    keys = [k for k in per_seed[0] if k != "report"]
    values = {k: np.array([m[k] for m in per_seed], dtype=np.float64) for k in keys}
    mean = {k: float(v.mean()) for k, v in values.items()}
    std = {k: float(v.std(ddof=1)) if num_seeds > 1 else None for k, v in values.items()}

    from .training.metrics import to_probabilities

    ensemble = headline_metrics(np.mean([to_probabilities(x) for x in pooled_logits], axis=0), labels, label_names)

    # Every test clip scored with its fold's training prior: argmax = the majority class.
    prior_rows = []
    for f, counts in enumerate(train_class_counts):
        counts = np.asarray(counts, dtype=np.float64)
        prior = counts / max(counts.sum(), 1.0)
        prior_rows.append(np.repeat(prior[None, :], len(predictions[0][f]["labels"]), axis=0))
    baseline = headline_metrics(np.concatenate(prior_rows), labels, label_names)

    result = {
        "per_seed": [_scalars(m) for m in per_seed],
        "mean": mean,
        "std": std,
        "ensemble": _scalars(ensemble),
        "baseline": _scalars(baseline),
        "majority_class_per_fold": [label_names[int(np.argmax(c))] for c in train_class_counts],
        "per_class_recall": _pooled_recall([m["report"]["per_class"] for m in per_seed]),
    }
    if "coarse_per_class" in per_seed[0]["report"]:
        result["coarse_per_class_recall"] = _pooled_recall([m["report"]["coarse_per_class"] for m in per_seed])
    return result


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
def _pct(value) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def render_markdown(results: dict) -> str:
    """``results.md``: the summary table, the per-class recall table, the folds and the exact command."""
    agg = results["aggregate"]
    columns = list(FINE_METRICS) + [k for k in TABLE_COARSE if k in agg["mean"]]
    headers = {**FINE_METRICS, **COARSE_METRICS}
    seeds, folds = len(results["seeds"]), results["folds"]
    title = f"{Path(results['recipe']).stem}, protocol {results['protocol']} ({len(folds)} fold{'s' * (len(folds) > 1)}, " \
            f"{seeds} seed{'s' * (seeds > 1)})"

    def row(name, metrics, spread=None):
        cells = []
        for key in columns:
            cell = _pct(metrics.get(key))
            if spread is not None and spread.get(key) is not None:
                cell += f" ± {_pct(spread[key])}"
            cells.append(cell)
        return f"| {name} | " + " | ".join(cells) + " |"

    lines = [f"### {title}", "", "All figures in %; mean class accuracy (mean recall over the classes present) is the headline.", "",
             "| | " + " | ".join(headers[k] for k in columns) + " |", "|---|" + "---:|" * len(columns),
             row(f"model, mean ± std over {seeds} seeds" if seeds > 1 else "model (1 seed)", agg["mean"], agg["std"])]
    if seeds > 1:  # with one seed the ensemble is the model
        lines.append(row(f"seed ensemble ({seeds} seeds, averaged probabilities)", agg["ensemble"]))
    lines += [row("majority baseline (training prior)", agg["baseline"]), ""]
    recall = agg["per_class_recall"]
    lines += [f"Per-class recall, fine level, pooled over {seeds} seed{'s' * (seeds > 1)} and {len(folds)} "
              f"fold{'s' * (len(folds) > 1)}:", "", "| class | test clips | recall |", "|---|---:|---:|"]
    lines += [f"| {name} | {v['support']} | {_pct(v['recall'])} |" for name, v in recall.items() if v["support"]]
    absent = [name for name, v in recall.items() if not v["support"]]
    lines += [""] + ([f"No test clips of: {', '.join(absent)}.", ""] if absent else [])
    if results["protocol"] == "leave_one_recording_out":
        lines.append(f"Folds: each of {', '.join(f['name'] for f in folds)} held out in turn "
                     f"({sum(f['test_samples'] for f in folds)} test {folds[0].get('test_unit', 'clips')} in all).")
    else:
        fold = folds[0]
        lines.append(f"Test recordings: {', '.join(fold['test_recordings'])} ({fold['test_samples']} "
                     f"{fold.get('test_unit', 'clips')}); trained on {', '.join(fold['train_recordings'])} "
                     f"({fold['train_samples']} {fold.get('train_unit', 'clips')}).")
        shared = sorted(set(fold["test_recordings"]) & set(fold["train_recordings"]), key=natural_key)
        if shared:  # protocol given: the users' split is by keyframe
            lines.append(f"{', '.join(shared)} are on both sides: this is not a test on unseen recordings.")
    if seeds > 1:  # the spread in full: a rare class's few test clips can move one seed by several points
        per_seed = ", ".join(f"{seed}: {_pct(m['mean_class_accuracy'])}"
                             for seed, m in zip(results["seeds"], agg["per_seed"]))
        lines += ["", f"Mean class accuracy per seed: {per_seed}."]
    environments = []
    for run in results["runs"]:
        described = describe_environment(run.get("environment"))
        if described not in environments:
            environments.append(described)
    lines += ["", ("Trained with " if len(environments) == 1 else "Runs trained in different environments (the same "
                   "recipe and seed can train differently in each): ") + "; ".join(environments) + "."]
    lines += ["", "```", results["command"], "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class BenchmarkSetup:
    """What every run shares: the recipe, its overrides, the dataset and the output folder."""

    recipe: Path
    extra_overrides: list[str]
    dataset: str | None
    output: Path
    callbacks_override: list[str] = field(default_factory=list)

    def argv(self, fold: Fold | None = None, seed: int | None = None, output_dir: Path | None = None) -> list[str]:
        """A `parse_recipe` argv: recipe, the user's overrides, then what the benchmark sets (last: it wins)."""
        argv = [str(self.recipe), *self.extra_overrides]
        if self.dataset is not None:
            argv += ["--dataset", self.dataset]
        argv += [*FORCED_OVERRIDES, *self.callbacks_override]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if output_dir is not None:
            argv += ["--output_dir", str(output_dir)]
        if fold is not None and fold.name != "given":
            argv += ["--eval_recordings", *fold.test_recordings]
        return argv


def parse(argv: list[str]):
    from .parser import parse_recipe

    try:
        return parse_recipe(argv, prog="thermal-hf benchmark")
    except ValueError as err:  # TrainingArguments' own checks of key combinations
        raise RecipeError(str(err)) from err


def _recipe_text(parsed) -> dict:
    """The body of the ``recipe.yaml`` `train.run` writes for ``parsed`` (what "the same run" means)."""
    import yaml

    from .parser import dump_recipe

    with tempfile.TemporaryDirectory() as tmp:
        return yaml.safe_load(dump_recipe(parsed, Path(tmp) / "recipe.yaml").read_text())


#: Recipe keys that say where a run's files are, not what it is: the same run under another spelling of its folder
#: (relative or absolute, a moved benchmark folder) is still the same run. The data's identity is checked apart.
_LOCATION_KEYS = ("output_dir", "logging_dir", "dataset", "cache_dir")
#: Compared as the precision the run trained in (`auto` is bf16 on one machine and fp32 on another).
_PRECISION_KEYS = ("mixed_precision", "bf16", "fp16")


def _comparable(recipe) -> dict:
    if not isinstance(recipe, dict):
        return recipe
    return {k: v for k, v in recipe.items() if k not in _LOCATION_KEYS and k not in _PRECISION_KEYS}


def _trained_precision(recipe: dict, info: dict) -> str:
    """The precision a saved run trained in: recorded by the benchmark since the sixteenth session, else read from
    its recipe (which then recorded the resolved value)."""
    if info.get("mixed_precision"):
        return info["mixed_precision"]
    asked = recipe.get("mixed_precision")
    if asked not in (None, "auto"):
        return asked
    return "bf16" if recipe.get("bf16") else "fp16" if recipe.get("fp16") else "no"


def data_fingerprint(dataset_path: Path) -> dict:
    """Which data a run trained and was scored on: the converted folder and its conversion record. A raw folder's
    conversion lives under a cache key of its files (contents included), so edited or regenerated data gives
    another folder; a folder converted again in place gives another record (its time, counts, skips)."""
    import hashlib

    from .data.convert import CONVERSION_FILE

    record = Path(dataset_path) / CONVERSION_FILE
    return {"dataset": str(Path(dataset_path).resolve()),
            "conversion_sha256": hashlib.sha256(record.read_bytes()).hexdigest() if record.is_file() else None}


def reuse_verdict(run_dir: Path, parsed, data: dict) -> str | None:
    """None if ``run_dir`` holds a complete run of exactly this recipe on this data (so it can be reused); else
    why not (an empty string when there is no finished run at all)."""
    from .train import EVAL_PREDICTIONS_FILE, RECIPE_FILE

    saved = run_dir / RECIPE_FILE
    if not (run_dir / EVAL_PREDICTIONS_FILE).is_file() or not saved.is_file():
        return ""
    import yaml

    saved_recipe = yaml.safe_load(saved.read_text())
    if _comparable(saved_recipe) != _comparable(_recipe_text(parsed)):
        return "its recipe differs"
    info_path = run_dir / RUN_INFO_FILE
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    trained_in, would = _trained_precision(saved_recipe, info), parsed.training_args.mixed_precision
    if trained_in != would:
        return f"it trained in {trained_in} precision, this machine would train in {would}"
    recorded = info.get("data")
    if recorded is None:
        return "it does not record which data it was made on"
    if recorded != data:
        return f"it was made on other data ({recorded['dataset']}, or that folder converted again)"
    return None


def run_environment() -> dict:
    """What a run's numbers depend on besides the recipe and seed: library versions and the compute device.

    A CPU run repeats itself to the bit on one machine, but the same recipe and seed can train differently elsewhere
    (torch picks its CPU kernels by instruction set, its GPU kernels by card), so every run records where it ran.
    """
    import platform

    import torch
    import transformers

    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)}"
    else:
        device = f"cpu: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "device": device}


def describe_environment(env: dict | None) -> str:
    """One line for results.md, e.g. ``torch 2.14.1, transformers 5.24.0, numpy 2.4.6, cpu: AVX512, 2 threads``."""
    if not env:
        return "not recorded"
    return ", ".join(f"{key} {env[key]}" for key in ("torch", "transformers", "numpy") if key in env) + \
        (f", {env['device']}" if "device" in env else "")


def set_aside_path(run_dir: Path) -> Path:
    """Where `train_once` keeps the older run of ``run_dir`` while a new one trains."""
    return run_dir.with_name(f".{run_dir.name}.previous")


def restore_set_aside(run_dir: Path) -> bool:
    """Give back the older run a killed process had set aside (its half-made successor is removed); True if one
    was. Called before a run's reuse is judged, so a finished older run is reused, not trained again."""
    previous = set_aside_path(run_dir)
    if not previous.exists():
        return False
    if run_dir.exists():
        shutil.rmtree(run_dir)
    previous.rename(run_dir)
    print(f"{run_dir}: the run set aside by an interrupted rerun is given back", flush=True)
    return True


def train_once(parsed, run_dir: Path, data: dict | None = None) -> float:
    """Train + evaluate one run in this process (on the data `data_fingerprint` describes); returns its wall-clock
    seconds."""
    from . import train

    # Nothing stale (predictions of an older run) may mix into the new one; the older run is set aside, not removed,
    # until the new one has finished: a failed or interrupted run gives it back.
    previous = set_aside_path(run_dir)
    restore_set_aside(run_dir)
    if run_dir.exists():
        run_dir.rename(previous)
    start = time.perf_counter()
    try:
        train.run(parsed)
    except BaseException:
        if previous.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            previous.rename(run_dir)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    seconds = time.perf_counter() - start
    info = {"seconds": seconds, "seed": parsed.training_args.seed, "environment": run_environment(), "data": data,
            "mixed_precision": parsed.training_args.mixed_precision}
    (run_dir / RUN_INFO_FILE).write_text(json.dumps(info) + "\n")
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return seconds


def load_run(run_dir: Path, train_split: str, label_names: list[str]) -> tuple[dict, np.ndarray]:
    """``(predictions, train_class_counts)`` of a finished run folder."""
    from .train import CLASS_DISTRIBUTION_FILE, EVAL_PREDICTIONS_FILE

    path = run_dir / EVAL_PREDICTIONS_FILE
    if not path.is_file():
        raise ThermalDataError(f"{run_dir}: the run wrote no {EVAL_PREDICTIONS_FILE} (was the evaluation skipped?)")
    predictions = json.loads(path.read_text())
    if predictions["label_names"] != list(label_names):
        raise ThermalDataError(f"{path}: class names differ from the dataset's")
    predictions["labels"] = np.asarray(predictions["labels"], dtype=np.int64)
    predictions["logits"] = np.asarray(predictions["logits"], dtype=np.float64).reshape(len(predictions["labels"]), -1)
    counts = json.loads((run_dir / CLASS_DISTRIBUTION_FILE).read_text())["class_counts"][train_split]
    return predictions, np.asarray([counts[name] for name in label_names], dtype=np.int64)


def check_held_out(fold: Fold, predictions: dict) -> None:
    # A guard on the whole point of the harness: the run evaluated exactly the clips of the held-out recordings.
    if fold.name == "given":
        return
    seen = set(predictions.get("recording", []))
    if not seen <= set(fold.test_recordings) or len(predictions["labels"]) != fold.test_samples:
        raise ThermalDataError(f"fold {fold.name}: the run evaluated recordings {sorted(seen)} "
                               f"({len(predictions['labels'])} clips), expected {fold.test_recordings} "
                               f"({fold.test_samples} clips)")


def benchmark(setup: BenchmarkSetup, protocol: str, num_seeds: int, eval_recordings=None, overwrite=False,
              command: str = "") -> dict:
    """Plan the folds, run (or reuse) every fold x seed, aggregate, write results.json / results.md."""
    from .train import load_data

    started = time.perf_counter()
    base = parse(setup.argv(output_dir=setup.output))
    data_args, training_args = base.data_args, base.training_args
    for key, why in (("max_eval_samples", "evaluates the held-out recordings whole"),
                     ("max_train_samples", "trains every fold on all of its training recordings (its report counts "
                      "them)")):
        if getattr(data_args, key) is not None:
            raise RecipeError(f"recipe key '{key}' is set: a benchmark {why}; remove it")
    if "early_stopping" in training_args.callbacks:
        # Stopping when the metric on the test recordings stops improving is choosing the epoch on the test set.
        kept = [name for name in training_args.callbacks if name != "early_stopping"]
        setup.callbacks_override = ["--callbacks", *(kept or ["none"])]
        print("benchmark: the early_stopping callback is switched off (it would pick the epoch on the test recordings)")
    if data_args.eval_recordings:  # only the `given` protocol would keep it, and then evaluate other recordings
        raise RecipeError(f"recipe key 'eval_recordings' is set in {setup.recipe}: the benchmark chooses the held-out "
                          "recordings (--protocol, --eval_recordings); remove it from the recipe")
    base_seed = training_args.seed

    data = load_data(data_args, training_args)
    fingerprint = data_fingerprint(data.path)
    dataset, label_names = data.dataset, data.label_names
    split_recordings = {name: list(dataset[name]["recording"]) for name in dataset}
    all_recordings = [name for column in split_recordings.values() for name in column]
    folds = plan_folds(all_recordings, protocol, eval_recordings)
    eval_split_recordings = None
    if data_args.votes_keyframes:  # one test clip per keyframe
        from .training.keyframe_vote import keyframe_recordings

        eval_split_recordings = {name: keyframe_recordings(dataset[name]["recording"], dataset[name]["image_id"])
                                 for name in dataset}
    describe_folds(folds, split_recordings, data_args.train_split, data_args.eval_split, eval_split_recordings)
    # What a row is follows the converted folder (a converted folder is used as made, whatever the recipe's target).
    from .data.convert import read_conversion_info

    rows_are_people = read_conversion_info(data.path).get("options", {}).get("target", data_args.target) == "person"
    for fold in folds:
        fold.train_unit = "people" if rows_are_people else "clips"
        fold.test_unit = "keyframes" if data_args.votes_keyframes else fold.train_unit

    seeds = [base_seed + i for i in range(num_seeds)]
    predictions = [[None] * len(folds) for _ in seeds]
    train_counts: list = [None] * len(folds)
    runs = []
    for f, fold in enumerate(folds):
        for s, seed in enumerate(seeds):
            run_dir = setup.output / fold.name / f"seed{s}"
            parsed = parse(setup.argv(fold, seed, run_dir))
            tag = f"[fold {f + 1}/{len(folds)} seed {s + 1}/{len(seeds)}] " + (
                "the dataset's own split" if fold.name == "given" else f"{', '.join(fold.test_recordings)} held out")
            restore_set_aside(run_dir)
            why_not = "" if overwrite else reuse_verdict(run_dir, parsed, fingerprint)
            reused = why_not is None
            if not reused:
                if why_not:
                    print(f"{tag}: the run in {run_dir} is trained again: {why_not}", flush=True)
                print(f"{tag}: training on {fold.train_samples} {fold.train_unit}, testing on {fold.test_samples} "
                      f"{fold.test_unit} (seed {seed}) -> {run_dir}", flush=True)
                train_once(parsed, run_dir, fingerprint)
            info_path = run_dir / RUN_INFO_FILE
            info = json.loads(info_path.read_text()) if info_path.is_file() else {}
            seconds = info.get("seconds")
            run_predictions, counts = load_run(run_dir, data_args.train_split, label_names)
            check_held_out(fold, run_predictions)
            predictions[s][f], train_counts[f] = run_predictions, counts
            fold_metrics = headline_metrics(run_predictions["logits"], run_predictions["labels"], label_names)
            took = "reused" if reused else f"{seconds:.0f} s"
            print(f"{tag}: mca {_pct(fold_metrics['mean_class_accuracy'])}% top-1 "
                  f"{_pct(fold_metrics['top1_accuracy'])}% ({took})", flush=True)
            runs.append({"fold": fold.name, "seed": seed, "output_dir": str(run_dir), "seconds": seconds,
                         "reused": reused, "environment": info.get("environment"), "metrics": _scalars(fold_metrics)})

    from .training.metrics import coarse_groups

    groups = coarse_groups(label_names)
    results = {
        "command": command,
        "recipe": str(setup.recipe),
        "overrides": setup.extra_overrides,
        "dataset": str(data_args.dataset),
        "converted_dataset": str(data.path),
        "protocol": protocol,
        "seeds": seeds,
        "label_names": label_names,
        "coarse_label_names": groups[0] if groups else None,
        "folds": [asdict(fold) for fold in folds],
        "runs": runs,
        "aggregate": aggregate(label_names, predictions, train_counts),
        "seconds": {"runs": sum(r["seconds"] or 0.0 for r in runs), "total": time.perf_counter() - started},
    }
    setup.output.mkdir(parents=True, exist_ok=True)
    (setup.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (setup.output / "results.md").write_text(render_markdown(results))
    return results


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    class _Parser(argparse.ArgumentParser):
        def error(self, message):  # `error: ...` + exit 2 from main(), like the other commands
            raise RecipeError(message)

    parser = _Parser(
        allow_abbrev=False,  # `--seed 2` must not be taken for `--seeds 2`
        prog="thermal-hf benchmark",
        description="Train and evaluate a recipe under a recording-level protocol, over seeds; report mean and std "
        "of mean class accuracy, top-1, top-3 and macro F1 (fine and coarse) beside the majority baseline.",
        epilog="Recipe overrides for every run go after `--`, e.g. `-- --num_train_epochs 5 --learning_rate 0.01` "
        "(`-- --seed 10` moves the base seed). Protocols, outputs and the keys every run is forced to: the "
        "docstring of thermal_hf/benchmark.py.",
    )
    parser.add_argument("recipe", help="YAML recipe (as for thermal-hf train)")
    parser.add_argument("--dataset", help="raw or converted dataset folder, or a Hub dataset repo id ORG/NAME (default: the recipe's dataset)")
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS,
                        help="given: the dataset's own split; grouped: the last recording of every group held out; "
                        "leave_one_recording_out: one fold per recording, predictions pooled")
    parser.add_argument("--seeds", type=int, default=3, help="runs per fold, with seed = recipe seed + 0, 1, ... (default 3)")
    parser.add_argument("--output", help="BENCH_DIR (default outputs/benchmark/<recipe stem>/<protocol>)")
    parser.add_argument("--eval_recordings", nargs="+", metavar="NAME",
                        help="grouped only: hold out these recordings instead of the last of each group")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--resume", dest="overwrite", action="store_false", default=False,
                       help="reuse finished runs with the same recipe (default)")
    reuse.add_argument("--overwrite", dest="overwrite", action="store_true", help="rerun every fold and seed")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``thermal-hf benchmark RECIPE --protocol P [...] [-- --key value ...]``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extras = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    try:
        try:
            args, unknown = build_parser().parse_known_args(own)
        except SystemExit as exit_:  # --help
            return int(exit_.code or 0)
        if unknown:  # most often a recipe key given before the `--` that separates the recipe's overrides
            raise RecipeError(f"unrecognized arguments: {' '.join(unknown)}; recipe keys go after `--`, e.g. "
                              f"thermal-hf benchmark {args.recipe} --protocol {args.protocol} -- {' '.join(unknown)}")
        if args.seeds < 1:
            raise RecipeError(f"--seeds must be at least 1, got {args.seeds}")
        recipe = Path(args.recipe)
        if not recipe.is_file():
            raise RecipeError(f"recipe {recipe}: file not found")
        managed = [t for t in extras if t.startswith("--") and t[2:].split("=", 1)[0].replace("-", "_") in MANAGED_KEYS]
        if managed:
            raise RecipeError(f"{managed[0]} after `--`: the benchmark sets it (use --dataset, --eval_recordings, "
                              "--output; split_by is always annotations)")
        output = Path(args.output) if args.output else Path("outputs/benchmark") / recipe.stem / args.protocol
        if output.exists() and not output.is_dir():
            raise RecipeError(f"--output {output}: an existing file; give a folder for the benchmark's runs and results")
        setup = BenchmarkSetup(recipe, extras, args.dataset, output)
        command = "thermal-hf benchmark " + shlex.join(argv)
        results = benchmark(setup, args.protocol, args.seeds, args.eval_recordings, args.overwrite, command)
    except (RecipeError, ThermalDataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: the runs that finished are kept; the same command reuses them and trains the rest",
              file=sys.stderr)
        return 130
    finally:
        from .train import _destroy_process_group

        _destroy_process_group()
    print()
    print(render_markdown(results))
    print(f"wrote {output / 'results.json'} and {output / 'results.md'} "
          f"({results['seconds']['total']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
