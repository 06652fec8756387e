"""Train a thermal SlowFast from a YAML recipe.

    python -m thermal_hf.train recipes/slowfast.yaml [--key value ...]
    accelerate launch [--config_file accelerate_config.yaml] -m thermal_hf.train recipes/slowfast.yaml [...]
    thermal-hf train recipes/demo.yaml

Fixed shape: parse the recipe -> set up logging -> load the data (a raw folder is converted once into a cache,
a converted folder is used as is; ``--dataset PATH`` points any recipe at other data) -> build the model (from
scratch, a saved model folder, or an imported pretrained checkpoint) and its processor -> train (optionally
resuming) -> evaluate -> save model + processor + ``recipe.yaml`` + ``class_distribution.json`` +
``eval_report.json`` + ``eval_predictions.json`` -> push to the Hub if ``push_to_hub``. ``eval_recordings`` holds
whole recordings out of training (all splits pooled), which is how ``thermal-hf benchmark`` builds its folds.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CheckpointError, RecipeError, ThermalDataError, TrainingDivergedError
from .log_warnings import is_main_process, log_package_warnings
from .parser import ParsedRecipe, dump_recipe, parse_recipe
from .training.output_dir import check_output_dir, remove_earlier_run, resolve_resume

logger = logging.getLogger("thermal_hf.train")

RECIPE_FILE = "recipe.yaml"
EVAL_RECIPE_FILE = "eval_recipe.yaml"  # an evaluation-only run's: the training run's recipe.yaml stays as it was
CLASS_DISTRIBUTION_FILE = "class_distribution.json"
EVAL_REPORT_FILE = "eval_report.json"
EVAL_PREDICTIONS_FILE = "eval_predictions.json"


# ---------------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------------
def setup_logging(training_args) -> None:
    """HF-example logging: INFO for thermal_hf on the main process, the recipe's log_level for the libraries."""
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logging.getLogger("thermal_hf").setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    log_package_warnings(main_process=training_args.process_index == 0)


def resolve_dataset(data_args, training_args) -> Path:
    """The converted dataset folder for ``data_args.dataset`` (generating / converting it first if needed)."""
    from .data.convert import CONVERSION_FILE, ensure_converted, is_converted_dataset, read_conversion_info
    from .data.location import is_hub_dataset_id, resolve_dataset_location

    if not data_args.dataset:
        raise RecipeError("recipe key 'dataset' is not set: give a raw or converted dataset folder (--dataset PATH)")
    path = Path(data_args.dataset).expanduser()
    # The first process prepares (downloads / generates / converts); the others wait, then find it ready.
    with training_args.main_process_first(local=False, desc="dataset preparation"):
        if not path.exists() and is_hub_dataset_id(data_args.dataset):
            # ORG/NAME: a Hub dataset repo. With synthetic_if_missing only one already in the cache is taken, so
            # the demo's data/synthetic never waits on the network; the warning below names the other meaning.
            try:
                path = resolve_dataset_location(data_args.dataset, local_files_only=data_args.synthetic_if_missing)
                logger.info(f"dataset {data_args.dataset}: the Hub dataset repo, at {path}")
            except ThermalDataError:
                if not data_args.synthetic_if_missing:
                    raise
        if not path.exists():
            if not data_args.synthetic_if_missing:
                raise ThermalDataError(
                    f"dataset {path}: folder not found (expected a raw dataset with frames/ and annotations/, or a "
                    "converted one; point the recipe at it with --dataset PATH)"
                )
            if training_args.process_index == 0:
                from .data.synthetic import generate_dataset

                hub = (f"; for the Hub dataset repo {data_args.dataset} set --synthetic_if_missing false"
                       if is_hub_dataset_id(data_args.dataset) else "")
                logger.warning(f"{path} not found: generating a synthetic dataset there and training on it "
                               f"(the recipe's synthetic_if_missing: true{hub})")
                generate_dataset(path, recordings=data_args.synthetic_recordings, seed=data_args.split_seed)
        options = data_args.conversion_options()
        if not is_converted_dataset(path):
            logger.info(f"{path} is a raw dataset: converted once per set of options into the cache ({options})")
        converted = ensure_converted(path, cache_dir=data_args.cache_dir, **options)
        if converted != path:
            logger.info(f"converted dataset: {converted}")
        record = read_conversion_info(converted)
        if record.get("skipped"):  # skip_invalid: the samples this run does not see, every time it reuses the folder
            first = record["skipped"][0]
            logger.warning(f"{len(record['skipped'])} sample(s) of {path} were skipped as unusable (skip_invalid), e.g. "
                           f"{first.get('file')}: {first.get('where')}: {first.get('reason')}; all are listed in "
                           f"{converted / CONVERSION_FILE}")
        return converted


def split_by_recordings(dataset, eval_recordings: list[str], dataset_path) -> tuple:
    """``(train, eval)``: every split of ``dataset`` pooled, ``eval_recordings`` held out, the rest trained on."""
    from datasets import concatenate_datasets

    pooled = concatenate_datasets([dataset[name] for name in dataset])
    recordings = pooled["recording"]
    known = sorted(set(recordings))
    unknown = [name for name in eval_recordings if name not in known]
    if unknown:
        raise RecipeError(
            f"recipe key 'eval_recordings': {', '.join(unknown)} not in {dataset_path} (its recordings: {', '.join(known)})"
        )
    held_out = set(eval_recordings)
    eval_rows = [i for i, name in enumerate(recordings) if name in held_out]
    train_rows = [i for i, name in enumerate(recordings) if name not in held_out]
    if not train_rows:
        raise RecipeError("recipe key 'eval_recordings': holds out every recording; nothing is left to train on")
    return pooled.select(train_rows), pooled.select(eval_rows)


@dataclass
class RunData:
    """The data a run trains and evaluates on."""

    path: Path  # the converted dataset folder
    dataset: Any  # its DatasetDict
    label_names: list[str]
    train: Any  # the training split, after eval_recordings / max_train_samples
    eval: Any  # the evaluation split, after eval_recordings / max_eval_samples


def load_data(data_args, training_args) -> RunData:
    """Convert (once) and load the recipe's dataset, then cut its train and eval splits as the recipe says."""
    from .data.convert import load_converted

    dataset_path = resolve_dataset(data_args, training_args)
    dataset = load_converted(dataset_path)
    for split in (data_args.train_split, data_args.eval_split):
        if split not in dataset:
            raise ThermalDataError(f"{dataset_path}: no split {split!r} (has {', '.join(dataset)})")
    label_names = list(dataset[data_args.train_split].features["label"].names)
    train_split, eval_split = dataset[data_args.train_split], dataset[data_args.eval_split]
    if data_args.eval_recordings:
        train_split, eval_split = split_by_recordings(dataset, data_args.eval_recordings, dataset_path)
        logger.info(f"held-out recordings {data_args.eval_recordings}: {len(train_split)} train / {len(eval_split)} eval")
    if data_args.max_train_samples is not None:
        train_split = train_split.select(range(min(data_args.max_train_samples, len(train_split))))
    if data_args.max_eval_samples is not None:
        eval_split = eval_split.select(range(min(data_args.max_eval_samples, len(eval_split))))
    return RunData(dataset_path, dataset, label_names, train_split, eval_split)


def build_model_and_processor(model_args, data_args, training_args, label_names):
    """``(model, processor)`` as the recipe says: from scratch, a saved folder or an imported checkpoint."""
    from transformers import set_seed

    source = model_args.model_name_or_path
    if model_args.pretrained:
        source = import_pretrained(model_args, data_args, training_args, label_names)
    processor = build_processor(model_args, data_args, source)
    # Seed before building: `Trainer` seeds only in its __init__, after a from-scratch model got its weights.
    set_seed(training_args.seed)
    return build_model(model_args, data_args, training_args, label_names, source), processor


def _source_has_processor(source: str | None) -> bool:
    return bool(source) and (Path(source) / "video_preprocessor_config.json").is_file()


def build_processor(model_args, data_args, source: str | None):
    """The video processor: the saved one of ``source`` (if any) or a new one, with the recipe's settings on top."""
    from .models.thermal_slowfast import ThermalVideoProcessor

    if _source_has_processor(source):
        processor = ThermalVideoProcessor.from_pretrained(source)
    else:
        processor = ThermalVideoProcessor()
    processor.num_frames = data_args.num_frames
    processor.frame_rate = data_args.frame_rate  # the windows' time resampling, reproduced at inference
    processor.invalid_floor = data_args.invalid_floor
    if model_args.person_crop_size is not None:
        processor.person_crop_size = int(model_args.person_crop_size)
    if model_args.person_threshold is not None:
        processor.person_threshold = float(model_args.person_threshold)
    if model_args.temperature_range is not None:
        processor.temperature_range = tuple(model_args.temperature_range)
    if model_args.temperature_reference is not None and model_args.temperature_reference != processor.temperature_reference:
        from .data.transforms import default_temperature_range

        processor.temperature_reference = model_args.temperature_reference
        if model_args.temperature_range is None:  # the old range was in the other reference's units
            processor.temperature_range = default_temperature_range(model_args.temperature_reference)
    if (model_args.normalize_mean is None) != (model_args.normalize_std is None):
        raise RecipeError("recipe keys 'normalize_mean' and 'normalize_std' must be set together")
    if model_args.normalize_mean is not None:
        processor.mean, processor.std = float(model_args.normalize_mean), float(model_args.normalize_std)
    return processor


def _pretrained_format(model_args) -> str:
    if model_args.pretrained_format != "auto":
        return model_args.pretrained_format
    # pytorchvideo's model zoo ships .pyth files, MMAction2's .pth files.
    return "pytorchvideo" if str(model_args.pretrained).endswith(".pyth") else "mmaction2"


def import_pretrained(model_args, data_args, training_args, label_names) -> str:
    """Import ``model_args.pretrained`` into ``output_dir/pretrained_import`` and return that folder."""
    from .models.thermal_slowfast.convert_checkpoint import import_checkpoint

    checkpoint = Path(model_args.pretrained).expanduser()  # there: `check_model_source` looked before the data
    target = Path(training_args.output_dir) / "pretrained_import"
    overrides = {k: v for k, v in model_args.config_overrides().items() if k != "model_depth"}
    with training_args.main_process_first(local=False, desc="checkpoint import"):
        if training_args.process_index == 0:
            logger.info(f"importing {checkpoint} ({_pretrained_format(model_args)}) into {target}")
            try:
                import_checkpoint(
                    checkpoint,
                    target,
                    format=_pretrained_format(model_args),
                    num_labels=len(label_names),
                    labels=label_names,
                    model_depth=model_args.model_depth,
                    seed=training_args.seed,
                    overwrite=True,  # this run's own import folder: a resumed run imports again
                    num_frames=data_args.num_frames,
                    **overrides,
                )
            except CheckpointError as err:  # its hints name the CLI flags; here they are recipe keys
                message = re.sub(r"(pass )?--format (\w+)", r"set the recipe key pretrained_format: \2", str(err))
                message = re.sub(r"pass --model_depth (\d+)", r"set the recipe key model_depth: \1", message)
                raise CheckpointError(message) from None
    return str(target)


def check_model_source(model_args, training_args) -> None:
    """Fail on a model key that cannot work before the data is converted (not with a traceback, or never)."""
    from .predict import is_local_model_path

    source = model_args.model_name_or_path
    if source and is_local_model_path(source) and not (Path(source).expanduser() / "config.json").is_file():
        raise RecipeError(
            f"recipe key 'model_name_or_path': {source} is not a saved model folder (no config.json); expected a "
            "training run's output_dir, one of its checkpoint-N folders, or a Hub id ORG/NAME"
        )
    if model_args.pretrained and not Path(model_args.pretrained).expanduser().is_file():
        raise CheckpointError(
            f"recipe key 'pretrained': {model_args.pretrained} not found (download it with `thermal-hf "
            "download-weights`)"
        )
    if not training_args.do_train and not source:
        raise RecipeError(
            "recipe key 'do_train' is false but 'model_name_or_path' is not set: give the trained model to evaluate "
            "(an untrained model's scores say nothing)"
        )


# Config keys a resumed run may change: they leave the weights' shapes alone (evaluation views, dropout rate, the
# head's initialisation, used only before the first step).
_RESUMABLE_CONFIG_KEYS = {"test_time_views", "dropout", "head_init_std"}


def check_resume_matches(checkpoint: str, config) -> None:
    """The recipe must build the model the checkpoint holds; else resuming fails deep in torch, or trains another
    model on the old optimiser state."""
    if not (Path(checkpoint) / "config.json").is_file():
        return  # a sharded (FSDP) checkpoint: the Trainer checks what it loads
    # Read back through the config class, so both sides carry the same defaults and key types.
    saved, ours = type(config).from_pretrained(checkpoint).to_dict(), config.to_dict()
    # The model's own documented kwargs and its classes; transformers' generic keys (use_cache, ...) are set by
    # the Trainer as it goes.
    from transformers import PretrainedConfig

    generic = inspect.signature(PretrainedConfig.__init__).parameters
    keys = [n for n in inspect.signature(type(config).__init__).parameters
            if n in ours and n not in generic and n not in _RESUMABLE_CONFIG_KEYS]
    keys.append("id2label")
    differing = [k for k in keys if saved.get(k) != ours.get(k)]
    if differing:
        shown = "; ".join(f"{k}: {saved.get(k)!r} in the checkpoint, {ours.get(k)!r} now" for k in differing[:6])
        raise RecipeError(
            f"recipe key 'resume_from_checkpoint': {checkpoint} holds another model than this recipe builds ({shown}"
            f"{'; ...' if len(differing) > 6 else ''}); resume with the recipe it was trained with (the "
            "checkpoint's recipe.yaml) or start afresh"
        )


def check_architecture(model_args, data_args) -> None:
    """Fail on an architecture the backbone cannot run (``model_depth: 34``) before the data is converted."""
    if model_args.model_name_or_path or model_args.pretrained:
        return  # the architecture comes from the checkpoint; build_model / import_pretrained check the keys
    from .models.thermal_slowfast import ThermalSlowFastConfig

    try:
        ThermalSlowFastConfig(num_frames=data_args.num_frames, **model_args.config_overrides())
    except ValueError as err:
        raise RecipeError(f"recipe: {err}") from None


def build_model(model_args, data_args, training_args, label_names, source: str | None):
    """A model for ``label_names``: from ``source`` (saved folder) if given, else from scratch."""
    from .models.thermal_slowfast import ThermalSlowFastConfig, ThermalSlowFastForVideoClassification

    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in enumerate(label_names)}
    overrides = model_args.config_overrides()
    if source is None:
        config = ThermalSlowFastConfig(
            num_labels=len(label_names),
            id2label=id2label,
            label2id=label2id,
            num_frames=data_args.num_frames,
            **overrides,
        )
        logger.info(f"building a SlowFast R{config.model_depth} from scratch ({len(label_names)} classes)")
        return ThermalSlowFastForVideoClassification(config)

    from transformers import AutoConfig, AutoModelForVideoClassification

    saved = AutoConfig.from_pretrained(source)
    depth = overrides.pop("model_depth", None)
    if depth is not None and depth != saved.model_depth:
        raise RecipeError(
            f"recipe key 'model_depth' is {depth} but {source} is a depth-{saved.model_depth} model; remove the key"
        )
    same_labels = [saved.id2label[i] for i in range(saved.num_labels)] == list(label_names)
    if not same_labels:
        logger.info(f"{source}: labels differ from the dataset's; the classification head is re-initialised")
    model = AutoModelForVideoClassification.from_pretrained(
        source,
        num_labels=len(label_names),
        id2label=id2label,
        label2id=label2id,
        num_frames=data_args.num_frames,
        ignore_mismatched_sizes=not same_labels,
        **overrides,
    )
    if not same_labels and saved.num_labels == len(label_names):
        # Same shape, different classes: ignore_mismatched_sizes would keep the old head; start it afresh.
        for module in model.slowfast.blocks[-1].modules():
            model._init_weights(module)
    return model


def class_distribution(splits: dict, label_names: list[str], trainer, data_args, dataset_path) -> dict:
    weights = trainer.class_weights
    return {
        "dataset": str(dataset_path),
        "class_names": list(label_names),
        "class_counts": {
            name: {label: int(n) for label, n in zip(label_names, ds.class_counts(len(label_names)))}
            for name, ds in splits.items()
        },
        "class_weighting": trainer.args.class_weighting,
        "class_weights": None if weights is None else {n: float(w) for n, w in zip(label_names, weights.tolist())},
        "sampling": data_args.sampling,
    }


def eval_summary(metrics: dict, eval_counts, train_counts) -> str:
    """One line comparing the model with the majority-class baseline and chance."""
    import numpy as np

    eval_counts = np.asarray(eval_counts)
    majority = int(np.argmax(train_counts))  # what a model that learned only the prior would answer
    baseline = eval_counts[majority] / max(1, eval_counts.sum())
    present = int((eval_counts > 0).sum())
    return (
        f"eval on {int(eval_counts.sum())} clips: top-1 {metrics.get('eval_accuracy', float('nan')):.1%} "
        f"(majority-class baseline {baseline:.1%}), mean class accuracy "
        f"{metrics.get('eval_mean_class_accuracy', float('nan')):.1%} (chance {1 / max(1, present):.1%} over "
        f"{present} classes), macro F1 {metrics.get('eval_macro_f1', float('nan')):.3f}"
    )


def eval_split_name(data_args) -> str:
    """What the evaluation set is, for the report and the model card: the split, or the held-out recordings."""
    if data_args.eval_recordings:
        return f"held-out recordings {', '.join(data_args.eval_recordings)}"
    return data_args.eval_split


def keyframe_groups_of(data_args, eval_split):
    """The keyframe number of each evaluated person row when the recipe scores keyframes by the people's votes
    (``target: person``, ``eval_target: keyframe``; `thermal_hf.training.keyframe_vote`), else None."""
    if not data_args.votes_keyframes:
        return None
    from .training.keyframe_vote import keyframe_groups

    return keyframe_groups(eval_split["recording"], eval_split["image_id"])


def write_eval_predictions(path: Path, compute_metrics, eval_split, label_names) -> None:
    """Per-clip logits of the last evaluation with each clip's provenance (what `thermal-hf benchmark` pools):
    one row per keyframe when the people's answers were voted into keyframes (its first person's provenance)."""
    import numpy as np

    scores, labels = compute_metrics.last_scores, compute_metrics.last_labels
    voted = getattr(compute_metrics, "keyframe_groups", None) is not None
    if scores is None or labels is None:
        return
    rows = getattr(compute_metrics, "last_rows", None)
    rows = np.arange(len(labels)) if rows is None else rows
    # predictions that do not belong to this split's rows are not written
    if voted and len(rows) and int(rows.max()) >= len(eval_split):
        return
    if not voted and len(labels) != len(eval_split):
        return
    names = ("recording", "image_id", "keyframe_index") + (() if voted else ("object_id",))
    columns = {name: list(eval_split[name]) for name in names if name in eval_split.column_names}
    if voted:
        columns = {name: [column[int(i)] for i in rows] for name, column in columns.items()}
    path.write_text(json.dumps({
        "label_names": list(label_names),
        "labels": [int(v) for v in labels],
        "logits": [[round(float(v), 6) for v in row] for row in scores],
        **columns,
    }) + "\n")


def show_predictions(output_dir: str, eval_split, count: int) -> None:
    """Run the saved model through `pipeline("video-classification")` on a few eval clips and print them."""
    import numpy as np
    from transformers import pipeline

    import thermal_hf  # noqa: F401  (registers the Auto classes and the pipeline)

    classifier = pipeline("video-classification", model=output_dir)
    names = eval_split.features["label"].names
    data = eval_split.with_format("numpy", columns=["frames", "label"])
    for index in np.linspace(0, len(data) - 1, num=min(count, len(data))).astype(int):
        row = data[int(index)]
        predictions = classifier(row["frames"], top_k=3)
        shown = ", ".join(f"{p['label']} {p['score']:.2f}" for p in predictions)
        print(f"clip {index} (true: {names[int(row['label'])]}): {shown}")


# ---------------------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------------------
def broadcast_buffers(model) -> None:
    """Every process gets the main process's buffers (batch-norm statistics).

    DDP broadcasts them from the main process at the start of each training forward, then every process updates
    them with its own batch: after the last step they differ, and each process would evaluate its share of the
    clips with other statistics than those of the model the main process saves.
    """
    import torch

    for buffer in model.buffers():
        torch.distributed.broadcast(buffer.data, src=0)


def run(parsed: ParsedRecipe) -> dict:
    """Do what the parsed recipe says; returns the final metrics (``train_*`` and ``eval_*``)."""
    import numpy as np

    from .training.callbacks import WriteIntoCheckpoints
    from .training.data import ThermalClipDataset, collate_clips
    from .training.metrics import make_compute_metrics
    from .training.trainer import ThermalTrainer

    model_args, data_args, training_args = parsed.as_tuple()
    setup_logging(training_args)
    logger.info(
        f"process {training_args.process_index}/{training_args.world_size} on {training_args.device}, "
        f"mixed precision: {training_args.mixed_precision}"
    )

    # data
    check_architecture(model_args, data_args)
    check_model_source(model_args, training_args)
    resume = resolve_resume(training_args) if training_args.do_train else None
    earlier = check_output_dir(training_args, resume, model_args.model_name_or_path)
    if training_args.world_size > 1:
        training_args.distributed_state.wait_for_everyone()  # every process has looked before anything changes
    data = load_data(data_args, training_args)
    dataset_path, label_names, train_split, eval_split = data.path, data.label_names, data.train, data.eval

    # model + processor
    model, processor = build_model_and_processor(model_args, data_args, training_args, label_names)

    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    train_ds = ThermalClipDataset(train_split, processor, data_args.augmentation_config(), train=True, seed=seed)
    eval_ds = ThermalClipDataset(eval_split, processor, train=False)
    compute_metrics = make_compute_metrics(label_names, keyframe_groups_of(data_args, eval_split))
    # `push_to_hub: true` pushes once, at the end, through `push()` (weights, processor, records and a card rendered
    # from the results). Trainer's own pushes (a repo at start-up, every checkpoint, a "Model save" commit with an
    # auto-generated card) would put intermediate weights and an incomplete card on the Hub first.
    push_requested, training_args.push_to_hub = training_args.push_to_hub, False
    trainer = ThermalTrainer(
        model=model,
        args=training_args,
        data_collator=collate_clips,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        compute_metrics=compute_metrics,
        sampling=data_args.sampling,
        mixup_alpha=data_args.mixup_alpha,
        cutmix_alpha=data_args.cutmix_alpha,
    )
    # A stopped run's checkpoints say what to resume them with (the output folder gets its copy at the end).
    trainer.add_callback(WriteIntoCheckpoints(RECIPE_FILE, lambda path: dump_recipe(parsed, path)))
    if resume is not None:
        check_resume_matches(resume, trainer.model.config)
    # Only now, when the data, the model and the trainer have been accepted: a run refused on the way (a bad
    # dataset, a num_frames mismatch, a contradicting checkpoint) leaves the earlier run as it was.
    if training_args.do_train and training_args.process_index == 0:
        remove_earlier_run(training_args.output_dir, earlier)
    if training_args.world_size > 1:
        training_args.distributed_state.wait_for_everyone()

    output_dir = Path(training_args.output_dir)
    metrics: dict = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=resume)
        if training_args.world_size > 1:
            broadcast_buffers(trainer.model)
        if training_args.retrain_classifier:  # before saving: the saved model is the re-trained one
            from .training.classifier_retraining import retrain_classifier

            result.metrics.update(retrain_classifier(
                trainer.model, train_ds, collate_fn=collate_clips, passes=training_args.retrain_classifier_passes,
                c=training_args.retrain_classifier_c, batch_size=training_args.per_device_eval_batch_size,
                num_workers=training_args.dataloader_num_workers, seed=seed,
                is_main_process=trainer.is_world_process_zero(), distributed=training_args.world_size > 1,
                progress=not training_args.disable_tqdm))
        trainer.check_weights("at the end")  # a NaN the logs did not show (between two logging steps) is not saved
        trainer.save_model()  # model + processor (processing_class)
        metrics.update(result.metrics)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    if training_args.do_eval:
        eval_metrics = trainer.evaluate()
        metrics.update(eval_metrics)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)

    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        # An evaluation-only run may write into the trained model's own folder: its recipe.yaml and class counts
        # say how that model was trained (the model card renders them), so they are not replaced.
        dump_recipe(parsed, output_dir / (RECIPE_FILE if training_args.do_train else EVAL_RECIPE_FILE))
        if training_args.do_train or not (output_dir / CLASS_DISTRIBUTION_FILE).exists():
            distribution = class_distribution({data_args.train_split: train_ds, data_args.eval_split: eval_ds},
                                              label_names, trainer, data_args, dataset_path)
            (output_dir / CLASS_DISTRIBUTION_FILE).write_text(json.dumps(distribution, indent=2) + "\n")
        if training_args.do_eval and compute_metrics.last_report is not None:
            report = {"metrics": {k: v for k, v in metrics.items() if k.startswith("eval_")}, **compute_metrics.last_report,
                      "label_names": label_names, "num_processes": training_args.world_size,
                      "split": eval_split_name(data_args)}
            (output_dir / EVAL_REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
            write_eval_predictions(output_dir / EVAL_PREDICTIONS_FILE, compute_metrics, eval_split, label_names)
            eval_counts = np.bincount(compute_metrics.last_labels, minlength=len(label_names))  # keyframes if voted
            print(eval_summary(metrics, eval_counts, train_ds.class_counts(len(label_names))))
        if training_args.do_train and training_args.show_predictions > 0:
            show_predictions(str(output_dir), eval_split, training_args.show_predictions)
        if push_requested and training_args.do_train:
            push(training_args, output_dir, metrics)
    return metrics


def push(training_args, output_dir: Path, metrics: dict) -> None:
    """Model, processor, records and a model card rendered from these results, in one commit."""
    from .hub import push_model

    repo_id = training_args.hub_model_id or output_dir.name
    url = push_model(
        output_dir,
        repo_id,
        private=bool(training_args.hub_private_repo),
        token=training_args.hub_token,
        metrics={k: v for k, v in metrics.items() if k.startswith("eval_")} or None,
        allow_incomplete=not training_args.do_eval,
    )
    logger.info(f"pushed to {url}")


def main(argv: list[str] | None = None) -> int:
    """``python -m thermal_hf.train RECIPE.yaml [--key value ...]``; returns the exit status."""
    parsed = None
    try:
        try:
            parsed = parse_recipe(argv, prog="python -m thermal_hf.train RECIPE.yaml")
        except ValueError as err:  # TrainingArguments' own checks of key combinations
            raise RecipeError(str(err)) from err
        run(parsed)
        _wait_for_the_other_processes()
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except KeyboardInterrupt:
        if is_main_process():  # Ctrl-C reaches every launched process: one of them says it
            print(f"\ninterrupted: {_what_an_interrupted_run_kept(parsed)}", file=sys.stderr)
        return 130
    except (RecipeError, ThermalDataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        _destroy_process_group()
    return 0


def _what_an_interrupted_run_kept(parsed: ParsedRecipe | None) -> str:
    """Which checkpoints a stopped run left and the command that continues it (instead of a traceback)."""
    from .training.output_dir import checkpoints, is_complete

    if parsed is None:
        return "nothing was written"
    output_dir = Path(parsed.training_args.output_dir)
    complete = [c.name for c in checkpoints(output_dir) if is_complete(c)]
    if not complete:
        return (f"no complete checkpoint in {output_dir}; the same command with --resume_from_checkpoint true "
                "starts it again from step 0 (or --overwrite_output_dir true clears the folder)")
    return (f"{output_dir} keeps {', '.join(complete)}; the same command with --resume_from_checkpoint true "
            f"continues from {complete[-1]}")


def _wait_for_the_other_processes() -> None:
    """A finished run's processes leave together. The main process still writes the reports (and pushes) after the
    others are done; a process that tore its gloo connections down meanwhile could abort the main one at exit
    (SIGABRT after everything was saved, so `accelerate launch` returned 1)."""
    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


def _destroy_process_group() -> None:
    # Avoids the "process group was not destroyed" warning (and a hang on some backends) at exit.
    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
