"""Share a trained model (and its converted dataset) on the Hugging Face Hub, with a model card built from results.

CLI::

    thermal-hf push --model MODEL_DIR --repo_id ORG/NAME [--private] [--metrics metrics.json]
                    [--dataset DATASET_DIR --dataset_repo_id ORG/DATA] [--token TOKEN] [--allow_incomplete_card]
                    [--dry_run]

What is pushed, in ONE commit per repository (a refused or failed push leaves nothing half-committed and is
never reported as a success):

- model repo: ``config.json``, the ``*.safetensors`` weights, the video processor
  (``video_preprocessor_config.json``), the evaluation/training records found in the folder (``metrics.json``,
  ``report.md``, ``confusion_matrix.png``, ``eval_report.json``, ``recipe.yaml``, ``class_distribution.json``) and
  ``README.md`` rendered from the ``model_card.md`` template. Trainer state (optimizer, scheduler, RNG, ``training_args.bin``) is not pushed.
- dataset repo: the converted ``DatasetDict`` exactly as ``save_to_disk`` wrote it (bit-exact Array3D frames),
  ``thermal_hf_conversion.json`` (the local source folder named, not its path) and a dataset card whose
  ``configs`` point `load_dataset(repo_id)` at the Arrow files; ``load_from_disk(snapshot_download(repo_id,
  repo_type="dataset"))`` gives the folder back, and thermal-hf commands take ``--dataset ORG/NAME``.

The model card is rendered from real results only. The metrics and per-class tables come from ``metrics.json``
(written by ``thermal-hf evaluate``; looked up in the model folder, or passed), else from training's
``eval_report.json`` (said in the log; that card has no majority-baseline comparison), the class distribution from
``class_distribution.json`` (written by training) or the dataset's ``thermal_hf_conversion.json``, the recipe
verbatim from ``recipe.yaml``. Missing metrics, class distribution or recipe make rendering fail, unless the caller
chooses ``allow_incomplete=True`` (``--allow_incomplete_card``): the card then says plainly "Not evaluated" /
"Not recorded". Rendering also fails if any ``{{placeholder}}`` would survive.

Tokens: ``--token`` / ``token=`` or, better, the ``HF_TOKEN`` environment variable / ``hf auth login``. A token is
only ever handed to ``huggingface_hub``; it is never printed, logged or written into a card (error messages are
scrubbed of it).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from thermal_hf.cli_parser import CommandParser
from thermal_hf.data.convert import CONVERSION_FILE
from thermal_hf.errors import ThermalDataError

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "model_card.md"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

logger = logging.getLogger("thermal_hf.hub")

# Files of a model folder that belong on the Hub (anything else, e.g. optimizer.pt of a Trainer checkpoint, stays).
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "video_preprocessor_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "metrics.json",
    "report.md",
    "confusion_matrix.png",
    "recipe.yaml",
    "class_distribution.json",
    "eval_report.json",
)
PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")


class ModelCardError(ValueError):
    """The model card cannot be rendered from what is available (missing results, surviving placeholder)."""


class HubPushError(RuntimeError):
    """The Hub refused or failed a push; nothing of that commit was pushed."""


# ----------------------------------------------------------------------------------------------------------------
# Reading what a model folder knows about itself
# ----------------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ThermalDataError(f"{path}: not valid JSON ({err})") from err
    except OSError as err:
        raise ThermalDataError(f"{path}: cannot be read ({err.strerror or err})") from err


def _read_metrics_file(path: Path) -> dict[str, Any]:
    """A metrics file given by the user: a JSON object with at least one of the card's headline metrics."""
    metrics = _read_json(path)
    if not isinstance(metrics, Mapping):
        raise ThermalDataError(
            f"{path}: expected a JSON object of metrics (the metrics.json of `thermal-hf evaluate`, or Trainer "
            f"eval_* metrics), got a {type(metrics).__name__}"
        )
    if not any(key in _normalise_metrics(metrics) for key, _ in _HEADLINE):
        raise ThermalDataError(
            f"{path}: holds none of the metrics a card reports ({', '.join(k for k, _ in _HEADLINE)}, with or "
            f"without an `eval_` prefix; `accuracy` counts as top-1); found the keys {sorted(metrics)[:10]}"
        )
    return dict(metrics)


def _normalise_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Accept our metrics.json, or a Trainer metrics dict (``eval_`` prefixes), and return plain keys."""
    out = {}
    for key, value in metrics.items():
        out[key[5:] if key.startswith("eval_") else key] = value
    if "top1_accuracy" not in out and "accuracy" in out:
        out["top1_accuracy"] = out["accuracy"]
    return out


def _check_metrics_describe(model_dir: Path, metrics: dict | None) -> None:
    """`thermal-hf evaluate`'s metrics record the weights they were computed with: refuse those of another model."""
    recorded = ((metrics or {}).get("model") or {}).get("weights_sha256")
    weights = model_dir / "model.safetensors"
    if not recorded or not weights.is_file():
        return
    from .evaluate import _sha256

    if _sha256(weights) != recorded:
        raise ModelCardError(
            f"the metrics were computed on another model ({metrics['model'].get('path', '?')}, weights sha256 "
            f"{recorded[:12]}...) than {weights} ({_sha256(weights)[:12]}...): evaluate this model "
            f"(thermal-hf evaluate --model {model_dir} ...) and give its metrics.json"
        )


def _class_distribution(model_dir: Path, class_distribution: Any, dataset_dir: Path | None) -> dict[str, dict]:
    """Return {split: {class name: count}} from an argument, class_distribution.json or the dataset's report."""
    data = class_distribution
    if data is None and (model_dir / "class_distribution.json").is_file():
        data = _read_json(model_dir / "class_distribution.json")
    if data is None and dataset_dir is not None and (dataset_dir / "thermal_hf_conversion.json").is_file():
        data = _read_json(dataset_dir / "thermal_hf_conversion.json")
    if data is None:
        return {}
    if isinstance(data, Mapping) and "class_counts" in data:
        data = data["class_counts"]
    if isinstance(data, Mapping) and data and all(isinstance(v, (int, float)) for v in data.values()):
        data = {"train": data}  # a flat {name: count} is the training data's distribution
    if not isinstance(data, Mapping) or not all(isinstance(v, Mapping) for v in data.values()):
        raise ThermalDataError(
            "class distribution: expected {class: count} or {split: {class: count}}, got " + type(data).__name__
        )
    return {str(split): {str(k): int(v) for k, v in counts.items()} for split, counts in data.items()}


def _fmt(value: Any, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.2f} %" if percent else f"{float(value):.4f}"


# ----------------------------------------------------------------------------------------------------------------
# Card sections
# ----------------------------------------------------------------------------------------------------------------

_HEADLINE = (
    ("top1_accuracy", "Top-1 accuracy"),
    ("top3_accuracy", "Top-3 accuracy"),
    ("top5_accuracy", "Top-5 accuracy"),
    ("mean_class_accuracy", "Mean class accuracy"),
    ("macro_f1", "Macro F1"),
)


def _split_of(metrics: dict) -> str:
    return metrics.get("split") or (metrics.get("dataset") or {}).get("split") or "evaluation"


def _metrics_section(metrics: dict | None) -> str:
    if metrics is None:
        return (
            "**Not evaluated.** This model was pushed without evaluation results "
            "(run `thermal-hf evaluate` and push again to add them)."
        )
    split = _split_of(metrics)
    baseline = metrics.get("baseline") or {}
    has_base = bool(baseline)
    head = "| Metric | This model |" + (" Majority-class baseline |" if has_base else "")
    rule = "|---|---|" + ("---|" if has_base else "")
    rows = [head, rule]
    for key, name in _HEADLINE:
        if key in metrics:
            row = f"| {name} | {_fmt(metrics[key])} |"
            rows.append(row + (f" {_fmt(baseline.get(key))} |" if has_base else ""))
    n = metrics.get("num_samples")
    people = (metrics.get("per_person") or {}).get("num_samples")
    if n is not None and people is not None:  # eval_target: keyframe; the class tables count people
        counted = (f" ({n} keyframes: the answers for their {people} annotated people voted into one per keyframe, "
                   "the recipe's `eval_target: keyframe`; the class distribution counts people)")
    else:
        counted = f" ({n} samples)" if n is not None else ""
    text = f"On the `{split}` split" + counted + ":\n\n" + "\n".join(rows)
    if has_base:
        text += (
            f"\n\nThe baseline always predicts the majority class of the {baseline.get('source_split', 'train')} "
            f"split (`{baseline.get('majority_class', '?')}`; its top-k are the k most frequent classes)."
        )
        model_top1, base_top1 = metrics.get("top1_accuracy"), baseline.get("top1_accuracy")
        if model_top1 is not None and base_top1 is not None and model_top1 <= base_top1:
            text += "\n\n**This model does not beat the majority-class baseline on top-1 accuracy.**"
    return text


def _per_class_section(metrics: dict | None) -> str:
    per_class = (metrics or {}).get("per_class")
    if not per_class:
        return "Not available: " + ("the model was not evaluated." if metrics is None else
                                    "the metrics given hold no per-class results (run `thermal-hf evaluate`).")
    rows = ["| Class | Precision | Recall | F1 | Support |", "|---|---|---|---|---|"]
    absent = []
    for name, m in per_class.items():
        support = int(m.get("support", 0))
        if support == 0:  # recall (and so F1) is undefined for a class the split does not hold
            absent.append(name)
        recall, f1 = ("n/a", "n/a") if support == 0 else (_fmt(m.get("recall")), _fmt(m.get("f1")))
        precision = "n/a" if m.get("predicted", 1) == 0 else _fmt(m.get("precision"))  # never predicted: 0/0
        rows.append(f"| {name} | {precision} | {recall} | {f1} | {support} |")
    if absent or any(m.get("predicted", 1) == 0 for m in per_class.values()):
        rows.append("\nn/a: recall of a class absent from this split (left out of mean class accuracy), precision "
                    "of a class the model never predicted.")
    return "\n".join(rows)


def _class_distribution_section(dist: dict[str, dict], label_names: list[str]) -> str:
    if not dist:
        return "Not recorded (no `class_distribution.json` in the model folder and no dataset given)."
    splits = list(dist)
    names = list(label_names) + [n for s in splits for n in dist[s] if n not in label_names]
    rows = ["| Class | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for name in dict.fromkeys(names):
        rows.append(f"| {name} | " + " | ".join(str(dist[s].get(name, 0)) for s in splits) + " |")
    rows.append("| **total** | " + " | ".join(str(sum(dist[s].values())) for s in splits) + " |")
    return "\n".join(rows)


def _imbalance_note(dist: dict[str, dict], label_names: list[str]) -> str:
    train = dist.get("train") or (next(iter(dist.values())) if dist else None)
    if not train:
        return "The class distribution of the training data was not recorded; expect the usual strong imbalance."
    present = {k: v for k, v in train.items() if v > 0}
    absent = [n for n in label_names if train.get(n, 0) == 0]
    top = max(present, key=present.get)
    note = (
        f"The training data is imbalanced: `{top}` has {present[top]} of {sum(present.values())} samples "
        f"({100 * present[top] / sum(present.values()):.0f} %), the rarest present class {min(present.values())}."
    )
    if absent:
        note += f" {len(absent)} class(es) never appear in training ({', '.join(f'`{a}`' for a in absent)}), so the "
        note += "model cannot be trusted on them."
    return note + " Read the mean class accuracy and the per-class table, not only top-1."


def _split_protocol(metrics: dict | None, recipe: dict) -> str:
    dataset = (metrics or {}).get("dataset") or {}
    options = dataset.get("conversion_options") or {}
    split_by = options.get("split_by") or recipe.get("split_by")
    evaluated = _split_of(metrics) if metrics else None
    if evaluated == recipe.get("train_split", "train"):
        return (f"Evaluated on the `{evaluated}` split, the data the model was trained on: the numbers measure how "
                "well it fits its training data, not how it does on data it has not seen.")
    if recipe.get("eval_recordings") or dataset.get("held_out_recordings"):
        held_out = recipe.get("eval_recordings") or dataset["held_out_recordings"]
        held_out = ", ".join(f"`{r}`" for r in ([held_out] if isinstance(held_out, str) else held_out))
        return (f"Evaluated on whole recordings held out of training ({held_out}): the numbers estimate performance "
                "on recordings the model has never seen.")
    if split_by == "recording":
        return ("Train and validation are grouped by recording: no recording appears in both, so the numbers "
                "estimate performance on unseen recordings of the same rooms and sensors.")
    if split_by == "annotations":
        return ("The dataset's own train/val split (random by keyframe) was used: windows from the same recordings, "
                "often a few frames apart, appear in both, so the numbers measure memorisation as much as "
                "generalisation. A split grouped by recording gives a more honest estimate.")
    return "The train/validation split protocol was not recorded; treat the numbers as optimistic."


def _is_hub_id(text: str) -> bool:
    """`ORG/NAME` that is a valid Hub repo id and not a local path or checkpoint file (`./x.pyth`, `models/r50`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", text) or text.endswith(_CHECKPOINT_SUFFIXES) or Path(text).exists():
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def check_repo_id(repo_id: str, what: str = "repo_id") -> None:
    """A repo id the Hub would refuse (`bad repo id`, `org//name`), refused here before any work, with the rule."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ThermalDataError(f"{what} {repo_id!r} is not a Hub repo id: expected ORG/NAME (or NAME for your own "
                               f"namespace) of letters, digits, '-', '_' and '.' ({err})") from None


_CHECKPOINT_SUFFIXES = (".pyth", ".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def _base_checkpoint(explicit: str | None, recipe: dict, config: dict) -> str:
    for value in (explicit, *(recipe.get(k) for k in ("pretrained", "model_name_or_path", "base_checkpoint")),
                  config.get("base_checkpoint")):
        if isinstance(value, Mapping) and value.get("file"):  # recorded by `thermal-hf import-checkpoint`
            details = ", ".join(f"{k} {str(value[k])[:12]}" if k == "sha256" else str(value[k])
                                for k in ("format", "sha256") if value.get(k))
            return f"`{value['file']}`" + (f" ({details})" if details else "")
        if value:
            return f"`{value}`"
    if recipe:
        return "none: trained from random initialisation (the recipe sets neither `pretrained` nor `model_name_or_path`)"
    return "not recorded (no recipe and no explicit base checkpoint)"


def _usage_snippet(repo_or_dir: str, num_frames: int, height: int, width: int) -> str:
    return f'''import numpy as np
import thermal_hf  # noqa: F401  registers the model, video processor and pipelines
from transformers import pipeline

classifier = pipeline("video-classification", model="{repo_or_dir}")
clip = np.full(({num_frames}, {height}, {width}), 17.0, dtype=np.float32)  # (frames, height, width) in Celsius
print(classifier(clip, top_k=3))  # [{{"label": ..., "score": ...}}, ...]

# A window of an HDF5 recording (the sensor's own format), centred on a frame:
thermal = pipeline("thermal-video-classification", model="{repo_or_dir}")
print(thermal("recording.h5", keyframe_index=240))'''


def _metadata(name: str, metrics: dict | None, dataset_id: str | None, base: str | None) -> str:
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "video-classification",
        "license": "apache-2.0",
        "tags": ["thermal-hf", "thermal", "video-classification", "action-recognition", "slowfast",
                 "low-resolution"],
    }
    if base and _is_hub_id(base.strip("`")):  # a Hub id, not a local file path
        meta["base_model"] = base.strip("`")
    if dataset_id:
        meta["datasets"] = [dataset_id]
    if metrics is not None:
        meta["metrics"] = ["accuracy", "f1"]
        split = _split_of(metrics)
        values = [
            {"type": "accuracy", "name": "Top-1 accuracy", "value": round(float(metrics["top1_accuracy"]), 4)}
        ] if "top1_accuracy" in metrics else []
        for key, label, kind in (("top5_accuracy", "Top-5 accuracy", "top_5_accuracy"),
                                 ("mean_class_accuracy", "Mean class accuracy", "mean_class_accuracy"),
                                 ("macro_f1", "Macro F1", "f1")):
            if metrics.get(key) is not None:
                values.append({"type": kind, "name": label, "value": round(float(metrics[key]), 4)})
        meta["model-index"] = [{
            "name": name,
            "results": [{
                "task": {"type": "video-classification", "name": "Video Classification"},
                "dataset": {"name": dataset_id or "thermal action windows", "type": dataset_id or "thermal-action",
                            "split": split},
                "metrics": values,
            }],
        }]
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()


def _framework_versions() -> str:
    import importlib.metadata as md

    lines = []
    for pkg in ("thermal-hf", "transformers", "torch", "pytorchvideo", "datasets", "accelerate", "huggingface_hub"):
        try:
            lines.append(f"- {pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            continue
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------


def _window_note(num_frames: int, frame_rate: float | None) -> str:
    if not frame_rate:
        return (f"Windows of {num_frames} consecutive frames cover different durations on different recordings "
                "because the frame rate of the sensors varies; very short or very long actions may be misjudged.")
    return (f"Windows are {num_frames} instants {1 / frame_rate:.2f} s apart ({num_frames / frame_rate:.1f} s), "
            "each the recorded frame nearest in time, so they span the same time whatever the sensor's rate. "
            "The bundled processor and `thermal-hf predict` resample HDF5 recordings the same way from their "
            f"timestamps; a numpy clip given directly must already be at {frame_rate:g} frames/s.")


def render_model_card(
    model_dir: str | Path,
    metrics: Mapping[str, Any] | str | Path | None = None,
    recipe_text: str | None = None,
    class_distribution: Any = None,
    base_checkpoint: str | None = None,
    dataset_id: str | None = None,
    *,
    repo_id: str | None = None,
    dataset_dir: str | Path | None = None,
    allow_incomplete: bool = False,
    template: str | None = None,
) -> str:
    """Render ``model_card.md`` for the model in ``model_dir`` from real results.

    Args:
        model_dir: folder written by ``save_pretrained`` or a Trainer checkpoint (``config.json`` required).
        metrics: a metrics dict (``thermal-hf evaluate``'s ``metrics.json`` or Trainer ``eval_*`` metrics) or a path
            to a metrics.json; default: ``model_dir/metrics.json``.
        recipe_text: the training recipe, verbatim; default: ``model_dir/recipe.yaml``.
        class_distribution: ``{class: count}`` (training data) or ``{split: {class: count}}``; default:
            ``model_dir/class_distribution.json``, else ``dataset_dir/thermal_hf_conversion.json``.
        base_checkpoint: what training started from; default: from the recipe or config.
        dataset_id: Hub id of the training dataset (card metadata ``datasets``).
        repo_id: Hub id the card is for (title and usage snippet); default: the folder name.
        allow_incomplete: render even without metrics / class distribution / recipe; the card then says so
            explicitly. Without it, such a card raises :class:`ModelCardError`.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ThermalDataError(
            f"no model folder at {model_dir} (expected config.json + model.safetensors from a training run's "
            "output_dir or a Trainer checkpoint folder)"
        )
    if not (model_dir / "config.json").is_file():
        raise ThermalDataError(f"{model_dir}: no config.json; expected a folder written by save_pretrained")
    config = _read_json(model_dir / "config.json")
    processor_file = model_dir / "video_preprocessor_config.json"
    processor_config = _read_json(processor_file) if processor_file.is_file() else {}
    frame_rate, person_crop_size = processor_config.get("frame_rate"), processor_config.get("person_crop_size")

    if metrics is None and (model_dir / "metrics.json").is_file():
        metrics = model_dir / "metrics.json"
    if isinstance(metrics, (str, Path)):
        metrics = _read_metrics_file(Path(metrics))
    report_path = model_dir / "eval_report.json"  # written by `thermal-hf train`: Trainer eval + per-class tables
    report = _read_json(report_path) if report_path.is_file() else None
    if metrics is None and report is not None:
        metrics = report.get("metrics") or None
        if metrics:  # no majority-baseline column: that comes from `thermal-hf evaluate`'s metrics.json
            logger.warning(f"no metrics.json in {model_dir}: the card reports training's evaluation ({report_path.name}), "
                           "without the majority-baseline comparison of `thermal-hf evaluate`")
    metrics = _normalise_metrics(metrics) if metrics is not None else None
    _check_metrics_describe(model_dir, metrics)
    if metrics is not None and report is not None and "per_class" not in metrics:
        metrics.update({k: report[k] for k in ("per_class", "confusion_matrix", "label_names", "split", "num_samples")
                        if k in report and k not in metrics})
    if recipe_text is None and (model_dir / "recipe.yaml").is_file():
        recipe_text = (model_dir / "recipe.yaml").read_text()
    recipe = yaml.safe_load(recipe_text) if recipe_text else {}
    recipe = recipe if isinstance(recipe, dict) else {}
    dist = _class_distribution(model_dir, class_distribution, Path(dataset_dir) if dataset_dir else None)

    missing = []
    if metrics is None:
        missing.append("metrics (run `thermal-hf evaluate --model DIR ... --output_dir DIR`, or pass --metrics)")
    if not dist:
        missing.append("class distribution (class_distribution.json in the model folder, or --dataset)")
    if not recipe_text:
        missing.append("recipe (recipe.yaml in the model folder)")
    if missing and not allow_incomplete:
        raise ModelCardError(
            f"{model_dir}: cannot render a complete model card, missing: " + "; ".join(missing)
            + ". Pass allow_incomplete=True (--allow_incomplete_card) to push a card that says so."
        )

    id2label = config.get("id2label") or {}
    label_names = [id2label[k] for k in sorted(id2label, key=int)]
    foreign = sorted({n for counts in dist.values() for n in counts if counts[n]} - set(label_names))
    if foreign and label_names:
        logger.warning(f"{model_dir}: the class distribution counts classes the model does not have ({', '.join(foreign[:6])}"
                       f"{' ...' if len(foreign) > 6 else ''}): it describes other data than this model's labels")
    height, width = (40, 60)
    size = config.get("image_size") or [height, width]
    num_frames = int(config.get("num_frames", 64))
    depth = config.get("model_depth", 50)
    name = repo_id.split("/")[-1] if repo_id else model_dir.resolve().name
    base = _base_checkpoint(base_checkpoint, recipe, config)
    if dataset_id is None and metrics is not None:
        dataset_id = (metrics.get("dataset") or {}).get("hub_id")

    if recipe_text:
        recipe_section = "Trained with this thermal-hf recipe (verbatim):\n\n```yaml\n" + recipe_text.rstrip() + "\n```"
    else:
        recipe_section = "Not recorded: this model folder holds no `recipe.yaml` (it was not trained by `thermal-hf train`)."
    values = {
        "metadata": _metadata(name, metrics, dataset_id, base),
        "model_name": name,
        "image_note": f"{height} x {width} pixels",
        "num_frames": str(num_frames),
        "num_labels": str(len(label_names) or config.get("num_labels", "?")),
        "architecture": f"SlowFast R{depth} (pytorchvideo), `{config.get('model_type', 'thermal_slowfast')}`",
        "input_description": (
            f"{num_frames} frames x {height} x {width} thermal pixels in degrees Celsius"
            + (f" at {frame_rate:g} frames/s" if frame_rate else "")
            + ", cleaned"
            + (f", cut to {person_crop_size} x {person_crop_size} pixels around the person (the largest blob "
               f"{processor_config.get('person_threshold', 3.0):g} C warmer than the frame's median)"
               if person_crop_size else "")
            + f" and normalised by the bundled video processor, resized to {size[0]} x {size[1]} inside the model"
            + (f"; each answer is the mean of {config['test_time_views']} views of the clip (its mirrors and turns, "
               "`test_time_views`)" if config.get("test_time_views", 1) > 1 else "")
        ),
        "window_note": _window_note(num_frames, frame_rate),
        "base_checkpoint": base,
        "dataset_id": f"`{dataset_id}`" if dataset_id else "see *Training data* below",
        "usage_snippet": _usage_snippet(repo_id or str(model_dir), num_frames, height, width),
        "metrics_section": _metrics_section(metrics),
        "per_class_section": _per_class_section(metrics),
        "dataset_section": _dataset_section(metrics, dataset_id),
        "class_distribution_section": _class_distribution_section(dist, label_names),
        "recipe_section": recipe_section,
        "imbalance_note": _imbalance_note(dist, label_names),
        "split_protocol": _split_protocol(metrics, recipe),
        "framework_versions": _framework_versions(),
    }
    text = template if template is not None else TEMPLATE_PATH.read_text()
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(values))
    if unknown:
        raise ModelCardError(f"model card template has placeholders with no value: {unknown}")
    card = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    if "{{" in card or "}}" in card:
        raise ModelCardError("a '{{...}}' placeholder survived rendering the model card")
    return card


def _dataset_section(metrics: dict | None, dataset_id: str | None) -> str:
    ds = (metrics or {}).get("dataset") or {}
    lines = []
    if dataset_id:
        lines.append(f"Training dataset on the Hub: [`{dataset_id}`](https://huggingface.co/datasets/{dataset_id}).")
    if ds.get("source"):
        lines.append(f"Converted from the recordings in `{Path(str(ds['source'])).name}` with `thermal-hf convert`.")
    opts = ds.get("conversion_options") or {}
    if opts:
        lines.append("Conversion options: " + ", ".join(f"`{k}={v}`" for k, v in sorted(opts.items())) + ".")
    frames = (f"frames resampled at {opts['frame_rate']:g} frames/s on the recordings' timestamps"
              if opts.get("frame_rate") else "consecutive frames")
    lines.append(
        f"Samples are windows of {frames} around annotated keyframes of ceiling-mounted thermal sensor "
        "recordings (40 x 60 pixels, degrees Celsius), one label per target."
    )
    return "\n\n".join(lines)


def render_dataset_card(dataset_dir: str | Path, repo_id: str) -> str:
    """A dataset card for a converted DatasetDict folder, from its ``thermal_hf_conversion.json``."""
    dataset_dir = Path(dataset_dir)
    report_path = dataset_dir / "thermal_hf_conversion.json"
    report = _read_json(report_path) if report_path.is_file() else {}
    counts = report.get("class_counts") or {}
    names = list(report.get("class_names") or [])
    splits = _dataset_splits(dataset_dir)
    meta = {"pretty_name": repo_id.split("/")[-1], "task_categories": ["video-classification"],
            "tags": ["thermal-hf", "thermal", "action-recognition", "low-resolution"], "license": "other",
            # `load_dataset(repo_id)` reads the splits' Arrow files (features included), not the JSON records
            "configs": [{"config_name": "default",
                         "data_files": [{"split": split, "path": f"{split}/data-*.arrow"} for split in splits]}]}
    table = _class_distribution_section({s: counts[s] for s in counts}, names) if counts else "Not recorded."
    options = report.get("options") or {}
    return f"""---
{yaml.safe_dump(meta, sort_keys=False).strip()}
---

# {repo_id.split("/")[-1]}

Windows of low-resolution (40 x 60) ceiling-mounted thermal sensor video in degrees Celsius around annotated
keyframes, converted with `thermal-hf convert` into a `datasets.DatasetDict` (splits: {", ".join(splits) or "n/a"}).
Each row holds `frames` (Array3D float32, bit-exact from the recording), `timestamps`, `label`, `bbox`, the ids
`recording`, `sensor_id`, `image_id`, `object_id`, `keyframe_index`, and `padded_frames` (frames repeated at a
recording's start or end to fill the window) and `invalid_fraction` (share of invalid pixels, repaired at training).

## Load

```python
from datasets import load_dataset

ds = load_dataset("{repo_id}")
```

thermal-hf reads it by its id too (`--dataset {repo_id}` in a recipe, `thermal-hf evaluate`, `thermal-hf benchmark`),
or as the folder `save_to_disk` wrote:

```python
from datasets import load_from_disk
from huggingface_hub import snapshot_download

ds = load_from_disk(snapshot_download("{repo_id}", repo_type="dataset"))
```

## Class distribution

{table}

## Conversion

Options: {", ".join(f"`{k}={v}`" for k, v in sorted(options.items())) or "not recorded"}.
Skipped samples: {len(report.get("skipped") or [])}.
"""


def _api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def _scrub(message: str, token: str | None) -> str:
    message = str(message)
    if token:
        message = message.replace(token, "***")
    return re.sub(r"(Bearer\s+)\S+", r"\1***", message)


def _commit(repo_id: str, files: dict[str, Path | bytes], *, repo_type: str, private: bool, token: str | None,
            commit_message: str) -> str:
    """Create the repo if needed and commit all ``files`` at once; return the commit URL."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    api = _api(token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(c) if isinstance(c, Path) else c)
               for p, c in files.items()]
        info = api.create_commit(repo_id, ops, commit_message=commit_message, repo_type=repo_type)
    except (HfHubHTTPError, OSError, ValueError) as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        where = f" (HTTP {status})" if status else ""
        raise HubPushError(
            f"push of {repo_type} repo '{repo_id}' failed{where}: {_scrub(err, token).splitlines()[0]}. "
            "Nothing was committed by this push."
        ) from None
    return str(info.commit_url)


def _model_files(model_dir: Path) -> dict[str, Path]:
    files = {name: model_dir / name for name in MODEL_FILES if (model_dir / name).is_file()}
    index = files.get("model.safetensors.index.json")
    if index is not None:
        # Shards are uploaded as the index names them; a stale index beside a single-file model is not uploaded.
        shards = sorted(set((_read_json(index).get("weight_map") or {}).values()))
        absent = [name for name in shards if not (model_dir / name).is_file()]
        if absent and "model.safetensors" in files:
            logger.warning(f"{index}: not uploaded: it names shards that are not in the folder ({', '.join(absent[:3])}); "
                           "the model is model.safetensors")
            del files["model.safetensors.index.json"]
        elif absent:
            raise ThermalDataError(f"{index}: names weight shards that are not in {model_dir}: {absent[:6]}")
        else:
            files.update({name: model_dir / name for name in shards})
    if not any(name.endswith(".safetensors") for name in files):
        raise ThermalDataError(f"{model_dir}: no *.safetensors weights; save the model with save_pretrained first")
    if not any(name in files for name in PROCESSOR_FILES):
        raise ThermalDataError(
            f"{model_dir}: no video processor (video_preprocessor_config.json); save the ThermalVideoProcessor "
            "beside the model, the pipeline needs it"
        )
    return files


def push_model(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload thermal-hf model, processor and model card",
    *,
    card: str | None = None,
    **card_kwargs: Any,
) -> str:
    """Push weights, config, processor, records and a rendered model card to ``repo_id`` in one commit.

    ``card_kwargs`` go to :func:`render_model_card` (metrics, recipe_text, class_distribution, base_checkpoint,
    dataset_id, dataset_dir, allow_incomplete). The card is rendered before anything is sent, so a card problem
    never leaves a half-pushed repo. Returns the commit URL; raises :class:`HubPushError` when the Hub refuses.
    """
    model_dir = Path(model_dir)
    files: dict[str, Path | bytes] = dict(_model_files(model_dir))
    if card is None:
        card = render_model_card(model_dir, repo_id=repo_id, **card_kwargs)
    # The repo's metrics.json is the one the card was rendered from.
    metrics = card_kwargs.get("metrics")
    if isinstance(metrics, (str, Path)):
        files["metrics.json"] = Path(metrics)
        beside = Path(metrics).expanduser().resolve().parent
        if beside != model_dir.resolve():  # the evaluation's own report and picture, not the folder's of another
            for name in ("report.md", "confusion_matrix.png"):
                files.pop(name, None)
                if (beside / name).is_file():
                    files[name] = beside / name
    elif isinstance(metrics, Mapping):
        files["metrics.json"] = (json.dumps(dict(metrics), indent=2) + "\n").encode()
    files["README.md"] = card.encode()
    return _commit(repo_id, files, repo_type="model", private=private, token=token, commit_message=commit_message)


def _dataset_splits(dataset_dir: Path) -> list[str]:
    record = dataset_dir / "dataset_dict.json"
    splits = (_read_json(record) or {}).get("splits") if record.is_file() else None
    if not isinstance(splits, list) or not all(isinstance(split, str) for split in splits):
        raise ThermalDataError(f"{record}: expected {{\"splits\": [names]}} as `save_to_disk` writes it")
    return splits


def _public_record(path: Path, dataset_dir: Path) -> bytes:
    """A JSON record as it is uploaded: the local source folder is named, not given as this machine's path."""
    text = path.read_text()
    source = (_read_json(dataset_dir / CONVERSION_FILE) or {}).get("source")
    if source and Path(str(source)).name:
        for spelling in {str(source), json.dumps(str(source))[1:-1]}:  # as written, and as escaped inside a string
            text = text.replace(spelling, Path(str(source)).name)
    return text.encode()


def _dataset_files(dataset_dir: Path) -> dict[str, Path | bytes]:
    """What `save_to_disk` wrote (each split's Arrow files as its state.json lists them) and the conversion
    record; never `datasets`' cache-*.arrow files left by a map() or filter() on the loaded dataset."""
    files: dict[str, Path | bytes] = {"dataset_dict.json": dataset_dir / "dataset_dict.json"}
    for split in _dataset_splits(dataset_dir):
        state_path = dataset_dir / split / "state.json"
        if not state_path.is_file():
            raise ThermalDataError(f"{dataset_dir}: split '{split}' has no {split}/state.json; convert it again")
        names = [entry.get("filename") for entry in (_read_json(state_path) or {}).get("_data_files") or []]
        absent = [name for name in names if not name or not (dataset_dir / split / name).is_file()]
        if absent or not names:
            raise ThermalDataError(f"{state_path}: lists Arrow files that are not in {dataset_dir / split} "
                                   f"({absent or 'none listed'}); convert it again")
        files[f"{split}/state.json"] = state_path
        files[f"{split}/dataset_info.json"] = _public_record(dataset_dir / split / "dataset_info.json", dataset_dir)
        files.update({f"{split}/{name}": dataset_dir / split / name for name in names})
    files[CONVERSION_FILE] = _public_record(dataset_dir / CONVERSION_FILE, dataset_dir)
    return files


def push_dataset(
    dataset_dir: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload converted thermal-hf dataset",
    *,
    card: str | None = None,
) -> str:
    """Push a converted DatasetDict folder (as ``save_to_disk`` wrote it) plus a dataset card, in one commit."""
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "dataset_dict.json").is_file():
        raise ThermalDataError(
            f"{dataset_dir}: not a converted dataset (no dataset_dict.json); run `thermal-hf convert` first"
        )
    files = _dataset_files(dataset_dir)
    files["README.md"] = (card if card is not None else render_dataset_card(dataset_dir, repo_id)).encode()
    return _commit(repo_id, files, repo_type="dataset", private=private, token=token, commit_message=commit_message)


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="thermal-hf push",
        description="Push a model (weights, config, processor, rendered model card) and optionally its converted "
        "dataset to the Hugging Face Hub. The token comes from --token, HF_TOKEN or `hf auth login`; it is never "
        "printed.",
    )
    p.add_argument("--model", type=Path, help="model folder (save_pretrained output or Trainer checkpoint)")
    p.add_argument("--repo_id", help="model repo on the Hub, ORG/NAME")
    p.add_argument("--private", action="store_true", help="create the repo(s) as private")
    p.add_argument("--metrics", type=Path, help="metrics.json from `thermal-hf evaluate` (default: MODEL/metrics.json, "
                   "else training's MODEL/eval_report.json, which has no majority-baseline comparison)")
    p.add_argument("--base_checkpoint", help="what training started from (default: from recipe.yaml / config)")
    p.add_argument("--dataset", type=Path, help="converted dataset folder: read for the card's class counts, and pushed "
                   "too when --dataset_repo_id is given")
    p.add_argument("--dataset_repo_id", help="dataset repo on the Hub, ORG/NAME: the --dataset folder is pushed there "
                   "(without it, --dataset only gives the model card its class counts; --dataset without --model "
                   "needs it)")
    p.add_argument("--token", help="Hub token (prefer the HF_TOKEN environment variable: argv is visible to others)")
    p.add_argument("--commit_message", default=None, help="commit message")
    p.add_argument("--allow_incomplete_card", action="store_true",
                   help="push even if metrics / class distribution / recipe are missing (the card says so)")
    p.add_argument("--dry_run", action="store_true", help="render and print the model card, push nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.model is None and args.dataset is None:
            raise ThermalDataError("nothing to push: give --model (with --repo_id) and/or --dataset")
        if args.model is not None and not args.repo_id:
            raise ThermalDataError("--model needs --repo_id ORG/NAME")
        if args.dataset is not None and args.model is None and not args.dataset_repo_id:
            raise ThermalDataError("--dataset needs --dataset_repo_id ORG/NAME")
        for flag, repo_id in (("--repo_id", args.repo_id), ("--dataset_repo_id", args.dataset_repo_id)):
            if repo_id is not None:  # before the card is rendered, and in --dry_run too
                check_repo_id(repo_id, flag)
        card = None
        if args.model is not None:
            card = render_model_card(
                args.model, metrics=args.metrics, base_checkpoint=args.base_checkpoint,
                dataset_id=args.dataset_repo_id, repo_id=args.repo_id, dataset_dir=args.dataset,
                allow_incomplete=args.allow_incomplete_card,
            )
            _model_files(args.model)  # check before any dataset push
        if args.dry_run:
            print(card if card is not None else render_dataset_card(args.dataset, args.dataset_repo_id))
            return 0
        if args.dataset is not None and not args.dataset_repo_id:
            print(f"{args.dataset}: read for the card's class counts, not pushed (no --dataset_repo_id)")
        if args.dataset is not None and args.dataset_repo_id:
            url = push_dataset(args.dataset, args.dataset_repo_id, private=args.private, token=args.token,
                               **({"commit_message": args.commit_message} if args.commit_message else {}))
            print(f"pushed dataset {args.dataset} -> {args.dataset_repo_id} ({url})")
        if args.model is not None:
            url = push_model(args.model, args.repo_id, private=args.private, token=args.token, card=card,
                             metrics=args.metrics,
                             **({"commit_message": args.commit_message} if args.commit_message else {}))
            print(f"pushed model {args.model} -> {args.repo_id} ({url})")
    except (ThermalDataError, ModelCardError, ValueError, OSError) as err:
        print(f"error: {_scrub(err, args.token)}", file=sys.stderr)
        return 2
    except HubPushError as err:
        print(f"error: {_scrub(err, args.token)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
