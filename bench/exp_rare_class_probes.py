"""Experiments behind "Is there any signal for the rare classes?" in BENCHMARKS.md (grouped split).

    .venv/bin/python bench/exp_rare_class_probes.py recipes/thermal_native.yaml \
        --dataset ../shared/datasets/thermal_action_v1 [--runs BENCH_DIR] [--seeds 3]

Two probes, neither a recipe option, both asking whether anything in an unseen recording tells the rare classes
(sitting, walking, transitions, kneeling) apart, beyond the class prior:

1. **Feature probe** (`--runs`, the output folder of a finished grouped `thermal-hf benchmark` run of the whole-room
   recipe: `thermal-hf benchmark recipes/thermal_native.yaml ... -- ` plus `exp_common.WHOLE_ROOM`):
   the trained models' pooled features (the input of the classification layer) classified by nearest class mean
   (cosine) and by k-nearest neighbours among the training clips. A classifier head biased towards the common
   classes would hide rare-class information the features still carry; these classifiers have no such bias.
2. **Person-blob features**: no network at all. Per frame, the largest blob warmer than a reference by 1.5 C
   (area, number of blobs, peak and mean excess temperature, elongation and length of the blob); per clip their
   mean, spread, minimum, maximum, value at the keyframe, change between the two halves, and the blob's motion.
   Random forests (plain and class-balanced, one per seed) and logistic regression on them. The reference is
   the frame's own median (the floor), or a per-recording background: a per-pixel percentile of all the
   recording's frames (`--background recording --percentile P`), the issue's "background subtraction".

Prints mean class accuracy / top-1 and per-class recall on the grouped split's held-out recordings (SL14_R4 + SL18_R4
here), training on the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from thermal_hf.benchmark import parse, plan_folds
from thermal_hf.data.convert import ClipReader
from thermal_hf.data.recordings import Recording
from thermal_hf.data.transforms import DEFAULT_INVALID_FLOOR, repair_invalid
from thermal_hf.train import load_data
from thermal_hf.training.metrics import compute_classification_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exp_common import WHOLE_ROOM, benchmark_runs  # noqa: E402  the whole room's keyframe clips these probes measured

BLOB_THRESHOLD = 1.5  # C above the reference: a person's skin/clothes read 2-8 C above these floors


def scores(pred: np.ndarray, labels: np.ndarray, num_labels: int) -> tuple[float, float]:
    """(mean class accuracy over the classes present, top-1), by the metrics training and the benchmark report."""
    metrics = compute_classification_metrics(np.eye(num_labels)[pred], labels, num_labels)
    return metrics["mean_class_accuracy"], metrics["top1_accuracy"]


def per_class(pred: np.ndarray, labels: np.ndarray, names: list[str]) -> str:
    recall = compute_classification_metrics(np.eye(len(names))[pred], labels, len(names), names)["per_class"]
    return ", ".join(f"{names[c]} {recall[names[c]]['recall']:.0%}" for c in np.unique(labels))


# ---- 1. feature probe ----------------------------------------------------------------------------------------
def pooled_features(model, processor, split) -> tuple[np.ndarray, np.ndarray]:
    """(features, head predictions) of every clip of ``split``, unaugmented, as the evaluation reads them."""
    import torch

    from thermal_hf.training.data import ThermalClipDataset

    captured = {}
    hook = model.slowfast.blocks[-1].proj.register_forward_hook(lambda m, i, o: captured.update(x=i[0].detach()))
    clips = ThermalClipDataset(split, processor)
    features, predictions = [], []
    try:
        for start in range(0, len(clips), 32):
            batch = torch.stack([clips[i]["pixel_values"] for i in range(start, min(len(clips), start + 32))])
            with torch.no_grad():
                predictions.append(model(batch).logits.argmax(-1).numpy())
            features.append(captured["x"].reshape(len(batch), -1).numpy())
    finally:
        hook.remove()
    return np.concatenate(features), np.concatenate(predictions)


def feature_probe(run_dir: Path, data) -> None:
    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastForVideoClassification,
        ThermalVideoProcessor,
    )

    model = ThermalSlowFastForVideoClassification.from_pretrained(run_dir).eval()
    processor = ThermalVideoProcessor.from_pretrained(run_dir)
    train_x, _ = pooled_features(model, processor, data.train)
    test_x, head = pooled_features(model, processor, data.eval)
    train_y, test_y = np.asarray(data.train["label"]), np.asarray(data.eval["label"])

    def unit(x):
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)

    present = np.unique(train_y)
    means = np.stack([train_x[train_y == c].mean(0) for c in present])
    similarity = unit(test_x) @ unit(train_x).T
    answers = {"classification head": head, "nearest class mean": present[(unit(test_x) @ unit(means).T).argmax(1)]}
    for k in (1, 5):
        nearest = np.argsort(-similarity, axis=1)[:, :k]
        answers[f"{k}-nearest neighbours"] = np.array([np.bincount(train_y[row]).argmax() for row in nearest])
    for name, pred in answers.items():
        mca, top1 = scores(pred, test_y, len(data.label_names))
        print(f"  {run_dir.name} {name:22s} mean class acc {mca:6.1%}  top-1 {top1:6.1%} | {per_class(pred, test_y, data.label_names)}")


# ---- 2. person-blob features ---------------------------------------------------------------------------------
def largest_warm_blob(difference: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mask of the largest connected blob warmer than BLOB_THRESHOLD, every blob's size)``; None when none is."""
    mask = difference > BLOB_THRESHOLD
    labelled, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = ndimage.sum(mask, labelled, range(1, count + 1))
    return labelled == int(np.argmax(sizes)) + 1, sizes


def blob_row(difference: np.ndarray) -> list[float]:
    found = largest_warm_blob(difference)
    if found is None:
        return [0.0] * 7
    largest, sizes = found
    ys, xs = np.nonzero(largest)
    spread = np.cov(np.stack([ys, xs])) if len(ys) > 2 else np.eye(2)
    low, high = np.sort(np.linalg.eigvalsh(spread + 1e-3 * np.eye(2)))
    excess = difference[ys, xs]
    return [sizes.max(), sizes.sum(), len(sizes), excess.max(), excess.mean(), np.sqrt(high / low), np.sqrt(high)]


def clip_features(frames: np.ndarray, background: np.ndarray | None) -> np.ndarray:
    frames = repair_invalid(np.asarray(frames, np.float32), DEFAULT_INVALID_FLOOR)
    reference = background[None] if background is not None else np.median(frames, axis=(1, 2), keepdims=True)
    difference = frames - reference
    rows = np.array([blob_row(d) for d in difference], np.float32)
    centres = np.array([ndimage.center_of_mass(d > BLOB_THRESHOLD) if (d > BLOB_THRESHOLD).any() else (np.nan,) * 2
                        for d in difference], np.float32)
    steps = np.nan_to_num(np.linalg.norm(np.diff(centres, axis=0), axis=1))
    half = len(rows) // 2
    return np.concatenate([rows.mean(0), rows.std(0), rows.min(0), rows.max(0), rows[half - 1: half + 2].mean(0),
                           rows[half:].mean(0) - rows[:half].mean(0),
                           [steps.mean(), steps.max(), np.abs(np.diff(rows[:, 0])).mean()]])


def recording_backgrounds(root: Path, names, percentile: float) -> dict[str, np.ndarray]:
    """Per-pixel ``percentile`` of every valid frame of each recording: its empty-room estimate."""
    backgrounds = {}
    for name in sorted(set(names)):
        frames = Recording(root / "frames" / f"{name}.h5").read()
        frames[~(frames >= DEFAULT_INVALID_FLOOR)] = np.nan
        backgrounds[name] = np.nanpercentile(frames, percentile, axis=0)
    return backgrounds


def blob_table(split, backgrounds) -> tuple[np.ndarray, np.ndarray]:
    reader = ClipReader(split)
    recordings = reader.columns["recording"]
    features = [clip_features(reader.frames(i), None if backgrounds is None else backgrounds[recordings[i]])
                for i in range(len(reader))]
    return np.stack(features), np.asarray(reader.columns["label"])


def blob_probe(data, dataset_root: Path, background: str, percentile: float, seeds: int) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    backgrounds = None
    if background == "recording":
        names = list(data.train["recording"]) + list(data.eval["recording"])
        backgrounds = recording_backgrounds(dataset_root, names, percentile)
    train_x, train_y = blob_table(data.train, backgrounds)
    test_x, test_y = blob_table(data.eval, backgrounds)
    classifiers = {"logistic regression": lambda s: make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=3000)),
                   "random forest": lambda s: RandomForestClassifier(500, min_samples_leaf=2, random_state=s),
                   "random forest, balanced": lambda s: RandomForestClassifier(
                       500, min_samples_leaf=2, class_weight="balanced_subsample", random_state=s)}
    for name, build in classifiers.items():
        predictions = [build(seed).fit(train_x, train_y).predict(test_x) for seed in range(seeds)]
        results = np.array([scores(pred, test_y, len(data.label_names)) for pred in predictions]) * 100
        (mca, top1), (mca_std, top1_std) = results.mean(0), results.std(0)
        print(f"  {name:24s} mean class acc {mca:5.1f} ± {mca_std:.1f}  top-1 {top1:5.1f} ± {top1_std:.1f} | "
              f"seed 0: {per_class(predictions[0], test_y, data.label_names)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--dataset", required=True, help="the raw dataset root (frames/ + annotations/)")
    parser.add_argument("--runs", type=Path, help="a grouped `thermal-hf benchmark` output folder: run the feature probe")
    parser.add_argument("--background", choices=("frame", "recording"), default="frame")
    parser.add_argument("--percentile", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    recordings = [path.stem for path in Path(args.dataset, "frames").glob("*.h5")]
    (fold,) = plan_folds(recordings, "grouped")  # the benchmark's grouped split: the last recording of each room
    parsed = parse([args.recipe, *WHOLE_ROOM, "--dataset", args.dataset, "--split_by", "annotations",
                    "--eval_recordings", *fold.test_recordings])
    data = load_data(parsed.data_args, parsed.training_args)
    if args.runs is not None:
        # the runs its results.json lists (a finished grouped benchmark), not every seed* folder left there
        run_dirs = [run for runs in benchmark_runs(args.runs).values() for run in runs]
        print(f"feature probe ({args.runs}):")
        for run_dir in run_dirs:
            feature_probe(run_dir, data)
    reference = "the frame's median" if args.background == "frame" else f"per-recording {args.percentile:g}th percentile"
    print(f"person-blob features, reference {reference}, {args.seeds} seeds:")
    blob_probe(data, Path(args.dataset), args.background, args.percentile, args.seeds)


if __name__ == "__main__":
    main()
