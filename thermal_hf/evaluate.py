"""Evaluate a model on a split of a converted dataset: metrics, a readable report, a confusion matrix, predictions.

CLI (also ``python -m thermal_hf.evaluate``, and under ``accelerate launch`` on several processes, which gives
the same numbers)::

    thermal-hf evaluate --model MODEL_DIR --dataset DATASET_DIR [--split validation] --output_dir OUT
                        [--batch_size 16] [--num_workers 0] [--device auto|cpu|cuda]
    accelerate launch --multi_gpu --num_processes 2 -m thermal_hf.evaluate --model ... --output_dir OUT
    # 2 CPU processes (gloo) on a machine without GPUs: the same command (--device auto is the CPU there; on a GPU
    # machine --device cpu); accelerate's --cpu flag alone starts ONE process unless an MPI launcher is configured

``DATASET_DIR`` is a converted dataset (``thermal-hf convert``) or a raw dataset folder, converted once into the
cache by ``thermal_hf.data.convert.ensure_converted`` with the model's ``num_frames`` and ``frame_rate`` and the
conversion options of the model's ``recipe.yaml`` (target, split, seeds); for a model trained with
``eval_recordings``, ``--split validation`` is those held-out recordings. With the recipe's ``eval_target:
keyframe`` the metrics count keyframes (the per-person figures are kept under ``per_person``); ``predictions.csv``
keeps one row per person. Clips go through the
training dataset class (``ThermalClipDataset``, no augmentation) and therefore through the model's
``ThermalVideoProcessor``: evaluation sees the training preprocessing. Scores are the pipeline's (softmax).

Writes to OUT (use the model folder as OUT to have ``thermal-hf push`` pick the results up for the model card):

- ``metrics.json``: top-1/3/5 accuracy, mean class accuracy, macro F1, per-class precision/recall/F1/support,
  confusion matrix (rows true, columns predicted), ``num_samples``, the majority-class ``baseline`` and the
  identity of the model (path, config, weights SHA-256) and of the dataset (path, split, fingerprint, options).
- ``report.md``: the same as tables a person can read.
- ``confusion_matrix.png``: rows normalised per true class (colour), counts written in the cells.
- ``predictions.csv``: one row per sample: ``index, image_id, object_id, recording, keyframe_index, true_label,
  predicted_label, correct, top1_label, top1_score, top2_label, top2_score, top3_label, top3_score`` and
  ``prob_<class>`` for every class.

Baseline: always predicting the majority class of the ``train`` split (if the dataset has one, else of the
evaluated split; ``baseline.source_split`` says which), with the training class frequencies as scores (so its
top-k is the k most frequent classes). It is printed beside the model's numbers.

Multi-process: the split is sharded by accelerate's prepared DataLoader and the outputs are collected with
``gather_for_metrics``, which drops the samples repeated to even out the last batch; every sample index is then
checked to appear exactly once.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import hashlib
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from thermal_hf.cli_parser import CommandParser
from thermal_hf.errors import RecipeError, ThermalDataError
from thermal_hf.log_warnings import is_main_process, log_package_warnings
from thermal_hf.training.output_dir import EVALUATE_RESULTS  # what an evaluation writes into its output_dir

logger = logging.getLogger(__name__)

CONFUSION_FIGSIZE = (10.0, 9.0)  # inches at 100 dpi -> a 1000 x 900 PNG whatever the number of classes
CONFUSION_DPI = 100
HEADLINE = (
    ("top1_accuracy", "top-1 accuracy"),
    ("top3_accuracy", "top-3 accuracy"),
    ("top5_accuracy", "top-5 accuracy"),
    ("mean_class_accuracy", "mean class accuracy"),
    ("macro_f1", "macro F1"),
)
ID_COLUMNS = ("image_id", "object_id", "recording", "keyframe_index")


class _Indexed:
    """Adds each item's position in the split, so gathered outputs can be matched to their ids."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        item["index"] = int(index)
        return item


def _collate(batch: list[dict]) -> dict:
    import torch

    from thermal_hf.training.data import collate_clips

    out = collate_clips(batch)
    out["index"] = torch.as_tensor([item["index"] for item in batch], dtype=torch.long)
    return out


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _label_mapping(dataset_names: list[str], model_names: list[str], where: str) -> np.ndarray:
    """Dataset class id -> model class id (by name); the model must know every dataset class."""
    missing = [n for n in dataset_names if n not in model_names]
    if missing:
        raise ThermalDataError(
            f"{where}: dataset classes {missing} are not labels of the model (model labels: {model_names})"
        )
    return np.asarray([model_names.index(n) for n in dataset_names], dtype=np.int64)


def majority_baseline(train_labels: np.ndarray, num_labels: int, eval_labels: np.ndarray, label_names: list[str],
                      source_split: str) -> dict[str, Any]:
    """Metrics of always predicting the most frequent class (scores: the class frequencies of ``train_labels``)."""
    from thermal_hf.training.metrics import compute_classification_metrics

    counts = np.bincount(train_labels, minlength=num_labels).astype(np.float64)
    if counts.sum() == 0:
        raise ThermalDataError(f"baseline: split '{source_split}' has no samples")
    prior = counts / counts.sum()
    scores = np.repeat(prior[None, :], len(eval_labels), axis=0)
    metrics = compute_classification_metrics(scores, eval_labels, num_labels, label_names)
    majority = int(np.argmax(counts))  # ties -> lowest id, as argmax in the metrics
    return {
        "majority_class": label_names[majority],
        "majority_class_id": majority,
        "source_split": source_split,
        **{key: metrics[key] for key, _ in HEADLINE},
    }


def evaluate(
    model_dir: str | Path,
    dataset_dir: str | Path,
    output_dir: str | Path,
    *,
    split: str = "validation",
    batch_size: int = 16,
    num_workers: int = 0,
    device: str = "auto",
    progress: bool | None = None,
    test_time_views: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any] | None:
    """Run the evaluation; on the main process write the four files and return the metrics (else ``None``).
    ``test_time_views`` (1, 2, 4, 8) overrides the model's own ``config.test_time_views`` for this evaluation.
    An ``output_dir`` holding an earlier evaluation's files is refused unless ``overwrite``."""
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from thermal_hf.data.convert import (
        ensure_converted,
        is_converted_dataset,
        load_converted,
        read_conversion_info,
    )
    from thermal_hf.data.location import resolve_dataset_location
    from thermal_hf.pipelines import postprocess_probabilities
    from thermal_hf.predict import load_model_and_processor, resolve_device
    from thermal_hf.training.data import ThermalClipDataset
    from thermal_hf.training.metrics import compute_classification_metrics

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda (accelerate places each process), got {device!r}")
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise ThermalDataError(f"--output_dir {output_dir}: an existing file; give a folder for the evaluation's files")
    earlier = [name for name in EVALUATE_RESULTS if (Path(output_dir) / name).exists()]
    if earlier and not overwrite:  # another model's or split's results, kept unless asked (as convert and train do)
        raise ThermalDataError(f"--output_dir {output_dir} holds an earlier evaluation ({', '.join(earlier)}); "
                               "refusing to replace it (pass --overwrite / overwrite=True, or choose another folder)")
    resolve_device(device)  # --device cuda on a machine without a GPU is an error, not a quiet CPU run
    # `auto` without a GPU is the CPU too: Accelerator(cpu=False) there would not join launched processes into one
    # job, and each would evaluate everything on its own.
    accelerator = Accelerator(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))
    model, processor = load_model_and_processor(model_dir, device="cpu")
    if test_time_views is not None:
        model.set_test_time_views(test_time_views)
    model.to(accelerator.device)
    num_labels = int(model.config.num_labels)
    label_names = [model.config.id2label[i] for i in range(num_labels)]

    with accelerator.main_process_first():  # a raw folder is converted once, by the main process
        local_dir = resolve_dataset_location(dataset_dir)  # a Hub dataset repo id: its downloaded snapshot
        raw = not is_converted_dataset(local_dir)
        dataset_path = ensure_converted(local_dir, asked_by="model",
                                        **training_conversion_options(model_dir, model, processor, raw=raw))
    dsd = load_converted(dataset_path)
    if split not in dsd:
        raise ThermalDataError(f"{dataset_path}: no split '{split}' (available: {sorted(dsd)})")
    data, train_data = dsd[split], dsd.get("train")
    held_out = training_eval_recordings(model_dir)
    described = f"split `{split}`"
    if held_out and split not in ("train", "validation"):  # another split: the baseline's prior is still what the
        from thermal_hf.train import split_by_recordings  # model trained on, never the held-out recordings

        try:
            train_data = split_by_recordings(dsd, held_out, dataset_path)[0]
        except ValueError as err:
            raise ThermalDataError(f"{model_dir}: its recipe's eval_recordings do not fit {dataset_path}: {err}") from err
    if held_out and split in ("train", "validation"):
        # The model was trained with whole recordings held out (`eval_recordings`): split the same way, so
        # "validation" is those recordings and never windows of recordings it trained on.
        from thermal_hf.train import split_by_recordings

        try:
            parts = dict(zip(("train", "validation"), split_by_recordings(dsd, held_out, dataset_path)))
        except ValueError as err:
            raise ThermalDataError(f"{model_dir}: its recipe's eval_recordings do not fit {dataset_path}: {err}") from err
        data, train_data = parts[split], parts["train"]  # the baseline's prior: the recordings it trained on
        described = ("the held-out recordings " if split == "validation" else "the training recordings (all but ") \
            + ", ".join(held_out) + ("" if split == "validation" else ")")
        logger.info(f"{split}: {described} -> {len(data)} clips")
    if len(data) == 0:
        raise ThermalDataError(f"{dataset_path}: split '{split}' is empty")
    to_model = _label_mapping(list(data.features["label"].names), label_names, f"{dataset_path} [{split}]")

    dataset = ThermalClipDataset(data, processor, train=False)
    loader = torch.utils.data.DataLoader(
        _Indexed(dataset), batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate
    )
    loader = accelerator.prepare_data_loader(loader)

    all_logits, all_index = [], []
    bar = tqdm(total=len(data), desc=f"evaluate {split}", unit="clip",
               disable=(not accelerator.is_main_process) or (None if progress is None else not progress))
    with torch.inference_mode():
        for batch in loader:
            logits = model(pixel_values=batch["pixel_values"].to(accelerator.device)).logits.float()
            logits, index = accelerator.gather_for_metrics((logits, batch["index"]))
            all_logits.append(logits.cpu().numpy())
            all_index.append(index.cpu().numpy())
            bar.update(len(index))
    bar.close()
    logits = np.concatenate(all_logits)
    index = np.concatenate(all_index)
    if len(index) != len(data) or not np.array_equal(np.sort(index), np.arange(len(data))):
        raise RuntimeError(
            f"evaluation gathered {len(index)} outputs for {len(data)} samples "
            f"({len(np.unique(index))} distinct): samples were dropped or duplicated across processes"
        )
    order = np.argsort(index, kind="stable")
    logits = logits[order]
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None

    labels = to_model[np.asarray(data.with_format("numpy", columns=["label"])["label"], dtype=np.int64)]
    probs = postprocess_probabilities(logits)
    person_labels, per_person = labels, None
    if training_votes_keyframes(model_dir) and "object_id" in data.column_names and min(data["object_id"]) >= 0:
        # Trained on people and scored per keyframe (its recipe's eval_target): the people's answers are voted into
        # keyframes, as training and the benchmark score it; the per-person figures are kept beside them.
        from thermal_hf.training.keyframe_vote import keyframe_groups, vote

        per_person = compute_classification_metrics(probs, labels, num_labels, label_names)
        scores, labels, _ = vote(probs, labels, keyframe_groups(data["recording"], data["image_id"]))
        metrics = compute_classification_metrics(scores, labels, num_labels, label_names)
        metrics["per_person"] = {key: per_person[key] for key in (k for k, _ in HEADLINE)}
        metrics["per_person"]["num_samples"] = per_person["num_samples"]
    else:
        metrics = compute_classification_metrics(probs, labels, num_labels, label_names)

    if train_data is not None and len(train_data):
        source = "train"
        train_labels = to_model[np.asarray(train_data.with_format("numpy", columns=["label"])["label"], np.int64)]
    else:
        source, train_labels = split, labels
    baseline = majority_baseline(train_labels, num_labels, labels, label_names, source)

    try:
        conversion = read_conversion_info(dataset_path)
    except ThermalDataError:
        conversion = {}
    model_dir_path = Path(str(model_dir))
    result: dict[str, Any] = {
        **metrics,
        "split": split,
        "label_names": label_names,
        "baseline": baseline,
        "model": {
            "path": str(model_dir_path.resolve()) if model_dir_path.exists() else str(model_dir),
            "model_type": model.config.model_type,
            "model_depth": getattr(model.config, "model_depth", None),
            "num_frames": int(model.config.num_frames),
            "image_size": list(getattr(model.config, "image_size", []) or []),
            "test_time_views": getattr(model.config, "test_time_views", 1),
            "num_labels": num_labels,
            "weights_sha256": _sha256(model_dir_path / "model.safetensors"),
        },
        "dataset": {
            "path": str(Path(dataset_path).resolve()),
            "given_path": str(dataset_dir),
            "split": split,
            "description": described,
            "held_out_recordings": list(held_out or []),
            "num_rows": len(data),
            "fingerprint": getattr(data, "_fingerprint", None),
            "source": conversion.get("source"),
            "conversion_options": conversion.get("options") or {},
            "class_names": list(data.features["label"].names),
        },
        "evaluation": {
            "num_processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "batch_size": batch_size,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(_json_safe(result), indent=2) + "\n")
    _write_predictions(out / "predictions.csv", data, person_labels, probs, label_names)  # one row per clip
    (out / "report.md").write_text(render_report(result))
    unit = "keyframes, voted" if per_person is not None else "samples"
    plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), label_names, out / "confusion_matrix.png",
                          title=f"{Path(str(model_dir)).name} on {described.removeprefix('split ').replace('`', '')} "
                                f"({len(labels)} {unit})")
    return result


def _json_safe(value: Any) -> Any:
    """NaN (e.g. an undefined metric) -> null, so metrics.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_predictions(path: Path, data, labels: np.ndarray, probs: np.ndarray, names: list[str]) -> None:
    present = [c for c in ID_COLUMNS if c in data.column_names]
    ids = data.select_columns(present).to_dict() if present else {}
    top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        header = ["index", *ID_COLUMNS, "true_label", "predicted_label", "correct"]
        for k in range(1, 4):
            header += [f"top{k}_label", f"top{k}_score"]
        writer.writerow(header + [f"prob_{n}" for n in names])
        for i in range(len(labels)):
            row = [i, *(ids[c][i] if c in ids else "" for c in ID_COLUMNS), names[labels[i]], names[top[i, 0]],
                   int(top[i, 0] == labels[i])]
            for k in range(min(3, probs.shape[1])):
                row += [names[top[i, k]], f"{probs[i, top[i, k]]:.10f}"]
            writer.writerow(row + [f"{p:.10f}" for p in probs[i]])


def _pct(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


def format_comparison(result: dict[str, Any]) -> str:
    """The model's headline numbers beside the majority-class baseline's, as a plain-text table."""
    base = result["baseline"]
    head = f"majority baseline ({base['source_split']}: {base['majority_class']!r})"
    lines = [f"{'metric':<22}{'model':>10}   {head}"]
    for key, name in HEADLINE:
        lines.append(f"{name:<22}{_pct(result.get(key)):>10}   {_pct(base.get(key))}")
    lines.append(f"{'samples':<22}{result['num_samples']:>10}")
    return "\n".join(lines)


def render_report(result: dict[str, Any]) -> str:
    base = result["baseline"]
    names = result["label_names"]
    matrix = np.asarray(result["confusion_matrix"])
    described = result["dataset"].get("description") or f"split `{result['split']}`"
    lines = [
        f"# Evaluation of `{Path(result['model']['path']).name}` on {described.removeprefix('split ')}",
        "",
        f"- model: `{result['model']['path']}` ({result['model']['model_type']}, depth "
        f"{result['model']['model_depth']}, {result['model']['num_frames']} frames)",
        f"- dataset: `{result['dataset']['path']}`, {described}, {result['num_samples']} samples",
        f"- baseline: always `{base['majority_class']}`, the majority class of "
        + ("the recordings the model trained on" if result["dataset"].get("held_out_recordings")
           else f"the `{base['source_split']}` split"),
    ]
    if result.get("per_person"):
        person = result["per_person"]
        lines.append(f"- scored per keyframe ({result['num_samples']} keyframes, {person['num_samples']} people in all): "
                     "each keyframe's answer is the most common answer of its people (ties to the lowest class id), "
                     "as its label is made from theirs (the recipe's `eval_target: keyframe`); per person: mean "
                     f"class accuracy {_pct(person['mean_class_accuracy'])}, top-1 {_pct(person['top1_accuracy'])}")
    lines += [
        "",
        "| Metric | Model | Majority baseline |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {_pct(result.get(key))} | {_pct(base.get(key))} |" for key, name in HEADLINE]
    lines += ["", "## Per class", "", "| Class | Precision | Recall | F1 | Support | Predicted |", "|---|---|---|---|---|---|"]
    for i, name in enumerate(names):
        m, predicted = result["per_class"][name], int(matrix[:, i].sum())
        # n/a where the ratio is 0/0: recall (and F1) of a class the split does not hold, precision of one never
        # predicted, as the model card shows them
        precision = _pct(m["precision"]) if predicted else "n/a"
        recall, f1 = (_pct(m["recall"]), _pct(m["f1"])) if m["support"] else ("n/a", "n/a")
        lines.append(f"| {name} | {precision} | {recall} | {f1} | {m['support']} | {predicted} |")
    absent = [n for n in names if result["per_class"][n]["support"] == 0]
    if absent or any(int(matrix[:, i].sum()) == 0 for i in range(len(names))):
        lines += ["", "n/a: a ratio of nothing (recall of a class the split does not hold, precision of a class "
                      "never predicted)."]
    if absent:
        lines += ["", "Classes absent from this split (recall undefined, left out of mean class accuracy): "
                      + ", ".join(f"`{a}`" for a in absent) + "."]
    pairs = [(int(matrix[t, p]), names[t], names[p]) for t in range(len(names)) for p in range(len(names))
             if t != p and matrix[t, p] > 0]
    if pairs:
        lines += ["", "## Most frequent confusions (true -> predicted)", ""]
        lines += [f"- {n} x `{t}` -> `{p}`" for n, t, p in sorted(pairs, reverse=True)[:10]]
    lines += ["", "![confusion matrix](confusion_matrix.png)", ""]
    return "\n".join(lines)


def plot_confusion_matrix(matrix: np.ndarray, names: list[str], out: Path, *, title: str = "") -> None:
    """Row-normalised confusion matrix (colour) with the counts written in every non-empty cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=CONFUSION_FIGSIZE, dpi=CONFUSION_DPI, layout="constrained")
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    k = len(names)
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), [f"{n} ({int(r)})" for n, r in zip(names, rows[:, 0])], fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (samples)")
    ax.set_title(title or "confusion matrix", fontsize=9)
    for t in range(k):
        for p in range(k):
            if matrix[t, p]:
                ax.text(p, t, str(int(matrix[t, p])), ha="center", va="center", fontsize=7,
                        color="white" if norm[t, p] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.savefig(out, dpi=CONFUSION_DPI)
    plt.close(fig)


# Recipe keys that decide how a raw folder is turned into samples and splits (`thermal-hf convert` options).
_CONVERSION_KEYS = {"target": "target", "split_by": "split_by", "val_fraction": "val_fraction",
                    "split_seed": "seed", "invalid_floor": "invalid_floor", "skip_invalid": "skip_invalid"}


def training_conversion_options(model_dir, model, processor=None, *, raw: bool = True) -> dict:
    """Conversion options for a raw dataset folder: those the model was trained with (its ``recipe.yaml``).

    Evaluating a model trained on a split grouped by recording on the annotation files' own split would score
    it on windows of the recordings it trained on; reading the recipe keeps the split the model was tuned for.
    A model without a recipe (imported, or trained elsewhere) gets the `thermal-hf convert` defaults (with a
    warning when `raw`, i.e. when the options will convert a raw folder). The window
    length and frame rate are the model's own (its config and its processor), whatever the recipe says.
    """
    options = {"num_frames": int(model.config.num_frames)}
    if processor is not None:  # None too: a model trained on consecutive frames must not be scored on resampled ones
        rate = getattr(processor, "frame_rate", None)
        options["frame_rate"] = None if rate is None else float(rate)
    recipe = _training_recipe(model_dir)
    if recipe is None:
        if raw:  # a converted folder is used as it was made: the options only check it
            logger.warning(f"{model_dir}: no recipe.yaml; a raw dataset folder is converted with the default options")
    else:
        options.update({opt: recipe[key] for key, opt in _CONVERSION_KEYS.items() if key in recipe})
    return options


def _training_recipe(model_dir) -> dict | None:
    """The ``recipe.yaml`` the model was trained with (None for a model without one)."""
    import yaml

    recipe_file = Path(str(model_dir)) / "recipe.yaml"
    return (yaml.safe_load(recipe_file.read_text()) or {}) if recipe_file.is_file() else None


def training_votes_keyframes(model_dir) -> bool:
    """True when the model's recipe trained on people and scored keyframes by their votes (``eval_target``)."""
    from thermal_hf.configs import DataArguments

    recipe = _training_recipe(model_dir) or {}
    try:
        return DataArguments(target=recipe.get("target", "person"), eval_target=recipe.get("eval_target")).votes_keyframes
    except RecipeError:  # a recipe this version cannot read votes nothing
        return False


def training_eval_recordings(model_dir) -> list[str] | None:
    """The recordings the model was trained without (its recipe's ``eval_recordings``), if any."""
    value = (_training_recipe(model_dir) or {}).get("eval_recordings")
    return [value] if isinstance(value, str) else (list(value) if value else None)


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="thermal-hf evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder, Trainer checkpoint or Hub id")
    p.add_argument("--dataset", required=True, help="converted or raw dataset folder, or a Hub dataset repo id ORG/NAME")
    p.add_argument("--split", default="validation", help="split to evaluate (default: validation)")
    p.add_argument("--output_dir", required=True, type=Path, help="where the four result files go")
    p.add_argument("--batch_size", type=int, default=16, help="clips per forward pass and process (default 16)")
    p.add_argument("--num_workers", type=int, default=0, help="DataLoader workers (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto (cuda if available), cpu or cuda (default auto)")
    p.add_argument("--test_time_views", type=int, metavar="{1,2,4,8}",
                   help="views of each clip averaged (mirrors, turns; checked by the model's config); default: the "
                        "model's config.test_time_views")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation's files in --output_dir")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_package_warnings()  # `accelerate launch -m thermal_hf.evaluate` comes here without the `thermal-hf` script
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
        result = evaluate(args.model, args.dataset, args.output_dir, split=args.split, batch_size=args.batch_size,
                          num_workers=args.num_workers, device=args.device, test_time_views=args.test_time_views,
                          overwrite=args.overwrite)
    except (ThermalDataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if is_main_process():
            print(f"\ninterrupted: the results are written to {args.output_dir} only once every clip is scored; run "
                  "the same command again", file=sys.stderr)
        return 130
    if result is not None:
        print(format_comparison(result))
        print(f"wrote {', '.join(EVALUATE_RESULTS)} to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
