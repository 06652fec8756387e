"""Recipe dataclasses: every field is a flat recipe key and a command-line flag of the same name.

A recipe (`recipes/*.yaml`) is a flat YAML mapping whose keys are the fields of the three dataclasses below,
grouped by comments (the alignment-handbook / TRL style). `TrainingArguments` keys are used verbatim.

Field names are unique across the three dataclasses (`HfArgumentParser` builds one flat namespace). Keys that
both the data and the model need live in one place and flow from there:

- `num_frames` (DataArguments): the window length of the conversion, the clip length the processor gives, and
  the model config's `num_frames`.
- `invalid_floor` (DataArguments): the conversion's `invalid_floor` and the processor's cleaning floor.
- `frame_rate` (DataArguments): the conversion's time resampling of windows, and the processor's (and so the
  saved model's) frame rate, with which `predict` and the pipeline cut windows out of a recording.
- `seed` (TrainingArguments): the training seed; the conversion's split seed is `split_seed`.
- `label_smoothing_factor` (TrainingArguments): label smoothing of our loss (no separate `label_smoothing`).

Types are the ones `HfArgumentParser` understands on the command line: tuples are declared as lists
(`--image_size 128 192`) and turned into tuples in `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .errors import RecipeError
from .log_warnings import is_main_process

logger = logging.getLogger(__name__)

DEFAULT_DATASET = "ThermalDataGen/thermal_action_dataset"

CLASS_WEIGHTINGS = ("none", "inverse_frequency", "inverse_sqrt_frequency", "effective_number")
LOSSES = ("cross_entropy", "focal")
SAMPLINGS = ("natural", "class_balanced")
MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")
CHECKPOINT_FORMATS = ("auto", "pytorchvideo", "mmaction2")
TEMPERATURE_REFERENCES = ("absolute", "clip_median")
TEST_TIME_VIEWS = (1, 2, 4, 8)  # the model config's (thermal_slowfast.TEST_TIME_VIEWS), without importing the model


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise RecipeError(f"recipe key {name!r}: expected one of {', '.join(map(str, choices))}; got {value!r}")


def _pair(name: str, value, cast=float) -> tuple | None:
    if value is None:
        return None
    values = tuple(cast(v) for v in value)
    if len(values) != 2:
        raise RecipeError(f"recipe key {name!r}: expected two values, got {list(value)!r}")
    return values


@dataclass
class ModelArguments:
    """Which model to train and its architecture. `None` means: the saved model's value, else the config default."""

    _argument_group_name = "model"

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A saved thermal_slowfast model folder (or Hub id) to fine-tune. None: build from scratch."},
    )
    pretrained: str | None = field(
        default=None,
        metadata={
            "help": "A raw SlowFast checkpoint (pytorchvideo .pyth or MMAction2 .pth) imported with "
            "`thermal_hf.models.thermal_slowfast.convert_checkpoint.import_checkpoint` before training; the "
            "classification head is re-initialised for this dataset's labels."
        },
    )
    pretrained_format: str = field(
        default="auto", metadata={"help": "Format of `pretrained`: auto (from the file), pytorchvideo or mmaction2."}
    )
    model_depth: int | None = field(default=None, metadata={"help": "ResNet depth of both pathways: 18, 50 or 101 (unset: 50)."})
    image_size: list[int] | None = field(
        default=None,
        metadata={"help": "(height, width) the backbone runs at; clips are resized on the device (unset: 256 384)."},
    )
    dropout: float | None = field(default=None, metadata={"help": "Dropout before the classification layer (unset: 0.8)."})
    stem_width: int | None = field(
        default=None, metadata={"help": "Slow-pathway stem channels; every stage's width scales with it (unset: 64)."}
    )
    stem_pool: bool | None = field(
        default=None, metadata={"help": "Max-pool after the stem (unset: true); false keeps 2x more resolution (native inputs)."}
    )
    test_time_views: int | None = field(
        default=None,
        metadata={
            "help": "Views of each clip averaged out of training (evaluation, predict, the pipeline): 1, 2 (and its "
            "mirror), 4 (both mirrors, the turn by 180 degrees) or 8 (every turn by 90 degrees and its mirror; a "
            "square image_size) (unset: 1). Saved with the model."
        },
    )
    slow_temporal_stride: int | None = field(default=None, metadata={"help": "Slow pathway frame stride (unset: 8)."})
    fast_temporal_stride: int | None = field(default=None, metadata={"help": "Fast pathway frame stride (unset: 2)."})
    temperature_range: list[float] | None = field(
        default=None,
        metadata={"help": "Processor: Celsius range clipped and scaled to 0..1 (default 5 45; -5 15 with clip_median)."},
    )
    temperature_reference: str | None = field(
        default=None,
        metadata={
            "help": "Processor: absolute (unset; temperature_range in C) or clip_median (temperatures relative to the "
            "clip's median, i.e. the room: temperature_range is then -5 15 unless set)."
        },
    )
    person_crop_size: int | None = field(
        default=None,
        metadata={
            "help": "Processor: cut every clip to a square of this many sensor pixels around the person: the largest "
            "blob warmer than the middle frame's median by person_threshold (a clip labelled for one annotated "
            "person: the blob in their box), which the model resizes to image_size (unset: the whole frame)."
        },
    )
    person_threshold: float | None = field(
        default=None, metadata={"help": "Processor: C above the frame's median that a person's pixels are (unset: 3.0)."}
    )
    normalize_mean: float | None = field(default=None, metadata={"help": "Processor: mean subtracted after scaling (unset: none)."})
    normalize_std: float | None = field(default=None, metadata={"help": "Processor: std divided after scaling (unset: none)."})

    def __post_init__(self):
        self.image_size = _pair("image_size", self.image_size, int)
        self.temperature_range = _pair("temperature_range", self.temperature_range, float)
        _check_choice("pretrained_format", self.pretrained_format, CHECKPOINT_FORMATS)
        if self.temperature_reference is not None:
            _check_choice("temperature_reference", self.temperature_reference, TEMPERATURE_REFERENCES)
        if self.test_time_views is not None and self.test_time_views not in TEST_TIME_VIEWS:
            raise RecipeError(f"recipe key 'test_time_views': expected one of {', '.join(map(str, TEST_TIME_VIEWS))}; "
                              f"got {self.test_time_views}")
        if self.temperature_range is not None and not self.temperature_range[0] < self.temperature_range[1]:
            raise RecipeError(f"recipe key 'temperature_range': expected LOW HIGH with LOW < HIGH (C); got "
                              f"{list(self.temperature_range)}")
        if self.normalize_std is not None and self.normalize_std <= 0:
            raise RecipeError(f"recipe key 'normalize_std': expected > 0 or null; got {self.normalize_std}")
        if self.person_crop_size is not None and self.person_crop_size < 1:
            raise RecipeError(f"recipe key 'person_crop_size': expected a positive number of pixels or null; got "
                              f"{self.person_crop_size}")
        if self.model_name_or_path and self.pretrained:
            raise RecipeError(
                "recipe keys 'model_name_or_path' and 'pretrained' are exclusive: the first is a saved model to "
                "fine-tune, the second a raw checkpoint to import"
            )

    def config_overrides(self) -> dict:
        """The architecture keys set in the recipe, as `ThermalSlowFastConfig` kwargs."""
        keys = ("model_depth", "image_size", "dropout", "slow_temporal_stride", "fast_temporal_stride", "stem_width",
                "stem_pool", "test_time_views")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass
class DataArguments:
    """Where the data is, how it is converted, sampled and augmented."""

    _argument_group_name = "data"

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "A raw dataset folder (frames/ + annotations/, converted once into a cache keyed by the "
            f"conversion options), a converted `datasets` folder, or a Hub dataset repo id (ORG/NAME) pushed with "
            f"`thermal-hf push --dataset`. The users' own recordings are the folder {DEFAULT_DATASET}/ of their "
            "data share."
        },
    )
    synthetic_if_missing: bool = field(
        default=False,
        metadata={"help": "If `dataset` does not exist, generate a synthetic raw dataset there (demo recipes)."},
    )
    synthetic_recordings: int = field(default=6, metadata={"help": "Recordings generated by synthetic_if_missing."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where raw folders are converted to (default: $THERMAL_HF_CACHE/converted or ~/.cache/thermal_hf/converted)."}
    )
    # conversion options (same words as `thermal-hf convert`)
    target: str = field(default="person", metadata={"help": "Sample unit: person or keyframe."})
    num_frames: int = field(
        default=64, metadata={"help": "Frames per clip: conversion window, processor output and model num_frames."}
    )
    frame_rate: float | None = field(
        default=None,
        metadata={
            "help": "Resample every window on the recordings' timestamps at this many frames per second (nearest "
            "recorded frame), so num_frames always spans num_frames / frame_rate seconds; None: every recorded "
            "frame. Saved with the model: inference on a recording resamples the same way."
        },
    )
    eval_target: str | None = field(
        default=None,
        metadata={
            "help": "What the evaluation scores, person or keyframe (unset: target). With target: person, "
            "keyframe makes each keyframe's answer from its people's answers by the rule that makes its label from "
            "their labels (most common class, ties to the lowest id) and scores it against the keyframe labels."
        },
    )
    split_by: str = field(default="annotations", metadata={"help": "annotations (the users' split) or recording."})
    val_fraction: float = field(default=0.2, metadata={"help": "Validation share when split_by=recording."})
    split_seed: int = field(default=0, metadata={"help": "Seed of the split_by=recording split."})
    skip_invalid: bool = field(default=False, metadata={"help": "Leave out unusable samples (bad frame_idx, unknown category, corrupt recording...) and list them in the conversion report, instead of failing."})
    invalid_floor: float = field(default=-50.0, metadata={"help": "Below this (C) a pixel is invalid (dead)."})
    eval_recordings: list[str] | None = field(
        default=None,
        metadata={
            "help": "Hold out whole recordings: every split of the converted dataset is pooled, these recordings "
            "(names of the `recording` column, e.g. SL14_R4 SL18_R4) are evaluated on and the rest trained on. "
            "Done at load time, so one cached conversion serves every split (`thermal-hf benchmark` uses it)."
        },
    )
    train_split: str = field(default="train", metadata={"help": "Split trained on."})
    eval_split: str = field(default="validation", metadata={"help": "Split evaluated on."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the train split (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the eval split (debugging)."})
    sampling: str = field(
        default="natural", metadata={"help": "natural, or class_balanced (every class equally likely per draw)."}
    )
    # augmentations: the fields of thermal_hf.data.transforms.AugmentationConfig (training only)
    random_resized_crop_scale: list[float] | None = field(
        default=None,
        metadata={"help": "(min, max) fraction of the frame area cropped, then resized back, e.g. 0.7 1.0; None: off."},
    )
    random_resized_crop_ratio: list[float] = field(
        default_factory=lambda: [3.0 / 4.0, 4.0 / 3.0],
        metadata={"help": "(min, max) aspect-ratio jitter of that crop relative to the frame's (log-uniform)."},
    )
    horizontal_flip_prob: float = field(default=0.0, metadata={"help": "Probability of mirroring a clip left-right."})
    vertical_flip_prob: float = field(
        default=0.0, metadata={"help": "Up-down mirroring (a ceiling sensor has no 'up': valid for top views)."}
    )
    temperature_offset: float = field(default=0.0, metadata={"help": "Max |offset| in C added to a clip."})
    temperature_gain: float = field(default=0.0, metadata={"help": "Max |gain - 1| around the background."})
    sensor_noise_std: float = field(default=0.0, metadata={"help": "Per-pixel Gaussian noise std in C."})
    random_erasing_prob: float = field(
        default=0.0,
        metadata={"help": "Probability of erasing one rectangle (2-20 percent of the frame, every frame) to the background."},
    )
    temporal_jitter: int = field(default=0, metadata={"help": "Max window shift in frames."})
    random_rotation_degrees: float = field(
        default=0.0, metadata={"help": "Max angle (0..180) a clip is turned about its centre, either way (top views)."}
    )
    mixup_alpha: float = field(default=0.0, metadata={"help": "Mixup Beta(alpha, alpha); 0 = off."})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "CutMix Beta(alpha, alpha); 0 = off."})

    def __post_init__(self):
        _check_choice("target", self.target, ("person", "keyframe"))
        if self.eval_target is not None:
            _check_choice("eval_target", self.eval_target, ("person", "keyframe"))
            if self.eval_target != self.target and self.target != "person":
                raise RecipeError(f"recipe key 'eval_target': {self.eval_target} needs target: person (the people's "
                                  f"answers are voted into keyframes); with target: {self.target} leave it unset")
        _check_choice("split_by", self.split_by, ("annotations", "recording"))
        _check_choice("sampling", self.sampling, SAMPLINGS)
        if self.num_frames < 1:
            raise RecipeError(f"recipe key 'num_frames': expected a positive integer; got {self.num_frames}")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise RecipeError(f"recipe key {name!r}: expected a positive number of samples or null (all); "
                                  f"got {getattr(self, name)}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise RecipeError(f"recipe key {name!r}: expected >= 0 (0 = off); got {getattr(self, name)}")
        if self.frame_rate is not None and not self.frame_rate > 0:
            raise RecipeError(f"recipe key 'frame_rate': expected a positive number of frames per second or null; "
                              f"got {self.frame_rate}")
        self.random_resized_crop_scale = _pair("random_resized_crop_scale", self.random_resized_crop_scale)
        self.random_resized_crop_ratio = _pair("random_resized_crop_ratio", self.random_resized_crop_ratio)
        if isinstance(self.eval_recordings, str):
            self.eval_recordings = [self.eval_recordings]
        if self.eval_recordings is not None and not self.eval_recordings:
            raise RecipeError("recipe key 'eval_recordings': expected at least one recording name")
        # Built here so that a bad augmentation value fails at parse time, naming the key.
        self.augmentation_config()

    @property
    def votes_keyframes(self) -> bool:
        """True when the evaluation votes the people's answers into keyframes (``target: person``,
        ``eval_target: keyframe``; `thermal_hf.training.keyframe_vote`)."""
        return self.target == "person" and self.eval_target == "keyframe"

    def augmentation_config(self):
        """The `AugmentationConfig` made of this recipe's augmentation keys."""
        from .data.transforms import AugmentationConfig

        names = [f.name for f in dataclasses.fields(AugmentationConfig)]
        try:
            return AugmentationConfig(**{name: getattr(self, name) for name in names})
        except ValueError as err:
            raise RecipeError(f"recipe augmentation keys: {err}") from err

    def conversion_options(self) -> dict:
        """Keyword arguments of `ensure_converted` / `convert_dataset` (they key the conversion cache)."""
        return dict(
            target=self.target,
            num_frames=self.num_frames,
            frame_rate=self.frame_rate,
            split_by=self.split_by,
            val_fraction=self.val_fraction,
            seed=self.split_seed,
            skip_invalid=self.skip_invalid,
            invalid_floor=self.invalid_floor,
        )


@dataclass
class ThermalTrainingArguments(TrainingArguments):
    """`TrainingArguments` (every key verbatim) plus the loss, optimiser and callback keys of thermal-hf.

    Defaults changed from `TrainingArguments`: `do_train`/`do_eval` True (a recipe trains and evaluates unless
    told otherwise), `metric_for_best_model` "mean_class_accuracy", `remove_unused_columns` False (the dataset
    already yields exactly the model's inputs; True is harmless, see `ThermalTrainer`), `lr_scheduler_type`
    "cosine", `output_dir` "outputs/thermal-slowfast", `ddp_find_unused_parameters` False,
    `restore_callback_states_from_checkpoint` True.
    """

    output_dir: str | None = field(default="outputs/thermal-slowfast", metadata={"help": "Where to write."})
    do_train: bool = field(default=True, metadata={"help": "Train (False: only evaluate the model)."})
    do_eval: bool = field(default=True, metadata={"help": "Evaluate on eval_split after training."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Harmless either way: the dataset yields only model inputs."}
    )
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule (cosine)."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "Resume training: a checkpoint-N folder, or true / last for the last checkpoint in "
                          "output_dir (training starts afresh, with a warning, when there is none)."},
    )
    metric_for_best_model: str | None = field(
        default="mean_class_accuracy", metadata={"help": "Metric selecting the best checkpoint (eval_ prefix optional)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into an output_dir that holds an earlier run: its checkpoints and results are removed "
                          "first. False: such a folder is refused unless resume_from_checkpoint continues it."},
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={"help": "Under several processes, DDP looks for parameters a step did not use: every parameter "
                          "of the SlowFast model takes part in every step, so the search (an extra pass over the "
                          "autograd graph each step, and a warning) is off. True for a model that skips some."},
    )
    restore_callback_states_from_checkpoint: bool = field(
        default=True,
        metadata={"help": "A resumed run restores its callbacks' state (early stopping's patience count) from the "
                          "checkpoint; their arguments (patience, threshold) are the recipe's."},
    )
    # loss
    class_weighting: str = field(
        default="none",
        metadata={"help": "Cross-entropy class weights: none, inverse_frequency, inverse_sqrt_frequency, effective_number."},
    )
    class_weight_beta: float = field(default=0.999, metadata={"help": "beta of effective_number weighting."})
    loss: str = field(default="cross_entropy", metadata={"help": "cross_entropy or focal."})
    focal_gamma: float = field(default=2.0, metadata={"help": "Focusing parameter of the focal loss."})
    logit_adjustment_tau: float = field(
        default=0.0,
        metadata={
            "help": "Logit-adjusted loss (Menon et al. 2021): the loss sees logits + tau * log(training class prior), "
            "the model answers with its raw logits, which then aim at mean class accuracy rather than top-1. "
            "1.0 is the balanced choice; 0 = off. Use instead of class_weighting."
        },
    )
    coarse_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of an extra cross-entropy on the coarse class groups (the part of a 'coarse-fine' class "
            "name before the dash, e.g. 'lying down'); 0 = off."
        },
    )
    retrain_classifier: bool = field(
        default=False,
        metadata={
            "help": "After training, refit only the last layer, class-balanced, on the frozen network (cRT, Kang et "
            "al. 2020): a logistic regression on the pooled features of retrain_classifier_passes augmented passes "
            "over the training clips, folded into the layer (the saved model is an ordinary model)."
        },
    )
    retrain_classifier_passes: int = field(
        default=3, metadata={"help": "Augmented passes over the training clips for retrain_classifier."}
    )
    retrain_classifier_c: float = field(
        default=1.0,
        metadata={"help": "Inverse L2 strength (scikit-learn's C) of retrain_classifier's logistic regression."},
    )
    # optimiser / schedule
    backbone_lr_multiplier: float = field(
        default=0.1, metadata={"help": "Backbone learning rate = learning_rate x this (the head gets learning_rate)."}
    )
    warmup_epochs: float = field(
        default=0.0, metadata={"help": "Linear warm-up length in epochs (exclusive with warmup_steps)."}
    )
    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": "auto: bf16 on a GPU that supports it, else fp16 on a GPU, else fp32 on CPU; no/fp16/bf16 set "
            "the bf16/fp16 keys, and win over `accelerate launch`'s mixed_precision. None: use the bf16/fp16 keys, "
            "else accelerate's config (fp16 in accelerate_config.yaml)."
        },
    )
    # callbacks
    callbacks: list[str] = field(
        default_factory=list,
        metadata={"help": "Callback names (thermal_hf.training.callbacks.CALLBACKS): early_stopping, weight_averaging; none clears."},
    )
    early_stopping_patience: int = field(default=10, metadata={"help": "Evaluations without improvement."})
    early_stopping_threshold: float = field(default=0.0, metadata={"help": "Minimum improvement that counts."})
    weight_averaging_start: float = field(
        default=0.5,
        metadata={
            "help": "weight_averaging: average the weights at the end of every epoch after this fraction of "
            "num_train_epochs (0.5 of 20 epochs: the last 10), then recompute the batch-norm statistics."
        },
    )
    show_predictions: int = field(
        default=0,
        metadata={"help": "After training, run pipeline('video-classification') on this many eval clips and print."},
    )

    def __post_init__(self):
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
            # Several launched processes and no accelerator: without use_cpu transformers would not join them into
            # one gloo job, and each process would train a model of its own into the same output_dir.
            if is_main_process():  # said once, not by every process
                logger.warning(
                    "%s processes launched on a machine without an accelerator: use_cpu set to true, so they train "
                    "one model together (gloo)", os.environ["WORLD_SIZE"])
            self.use_cpu = True
        if self.dataloader_persistent_workers and self.dataloader_num_workers == 0:
            # slowfast.yaml keeps its workers; `--dataloader_num_workers 0` alone must not end in torch's traceback
            logger.warning("dataloader_persistent_workers: true has no workers to keep with dataloader_num_workers 0; "
                           "set to false")
            self.dataloader_persistent_workers = False
        _check_choice("class_weighting", self.class_weighting, CLASS_WEIGHTINGS)
        if self.metric_for_best_model is not None:  # else a typo fails after the first evaluation, epochs in
            from .training.metrics import COARSE_SCALAR_KEYS, SCALAR_KEYS

            known = ("loss", *SCALAR_KEYS, *COARSE_SCALAR_KEYS)
            if self.metric_for_best_model.removeprefix("eval_") not in known:
                raise RecipeError(f"recipe key 'metric_for_best_model': expected one of {', '.join(known)} (eval_ "
                                  f"prefix optional); got {self.metric_for_best_model!r}")
        _check_choice("loss", self.loss, LOSSES)
        precision = None
        if self.mixed_precision is not None:
            _check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISIONS)
            precision = self._resolve_mixed_precision()
        # Ranges TrainingArguments leaves to fail deep inside training (a division by zero, torch's own message).
        for key, ok, expected in (
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, ">= 1"),
            ("per_device_train_batch_size", self.per_device_train_batch_size >= 1, ">= 1"),
            ("per_device_eval_batch_size", self.per_device_eval_batch_size >= 1, ">= 1"),
            ("class_weight_beta", 0 <= self.class_weight_beta < 1, "in [0, 1)"),
            ("focal_gamma", self.focal_gamma >= 0, ">= 0"),
            ("label_smoothing_factor", 0 <= self.label_smoothing_factor < 1, "in [0, 1)"),
            ("learning_rate", self.learning_rate >= 0, ">= 0"),
        ):
            if not ok:
                raise RecipeError(f"recipe key {key!r}: expected {expected}; got {getattr(self, key)}")
        self._check_integrations()
        if self.logit_adjustment_tau < 0:
            raise RecipeError(f"recipe key 'logit_adjustment_tau': expected >= 0; got {self.logit_adjustment_tau}")
        if self.coarse_loss_weight < 0:
            raise RecipeError(f"recipe key 'coarse_loss_weight': expected >= 0; got {self.coarse_loss_weight}")
        if self.retrain_classifier_passes < 1:
            raise RecipeError(f"recipe key 'retrain_classifier_passes': expected >= 1; got {self.retrain_classifier_passes}")
        if self.retrain_classifier_c <= 0:
            raise RecipeError(f"recipe key 'retrain_classifier_c': expected > 0; got {self.retrain_classifier_c}")
        if not 0 <= self.weight_averaging_start < 1:
            raise RecipeError(
                f"recipe key 'weight_averaging_start': expected a fraction of the epochs in [0, 1); got "
                f"{self.weight_averaging_start}"
            )
        if self.warmup_epochs < 0:
            raise RecipeError(f"recipe key 'warmup_epochs': expected >= 0; got {self.warmup_epochs}")
        if self.warmup_epochs > 0 and self.warmup_steps:
            raise RecipeError("recipe keys 'warmup_epochs' and 'warmup_steps' are exclusive: set one of them")
        if self.backbone_lr_multiplier < 0:
            raise RecipeError(f"recipe key 'backbone_lr_multiplier': expected >= 0; got {self.backbone_lr_multiplier}")
        if isinstance(self.callbacks, str):
            self.callbacks = [self.callbacks]
        # `--callbacks none` clears a recipe's list from the command line (argparse lists need one value).
        self.callbacks = [name for name in (self.callbacks or []) if name not in ("none", "None")]
        from .training.callbacks import CALLBACKS

        for name in self.callbacks:
            if name not in CALLBACKS:
                import difflib

                close = difflib.get_close_matches(name, CALLBACKS, n=3)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                raise RecipeError(
                    f"recipe key 'callbacks': unknown callback {name!r} (known: {', '.join(CALLBACKS)}).{hint}"
                )
        if self.bf16 and not self.use_cpu and not _has_accelerator():
            # No accelerator: the run is on the CPU either way, and transformers would refuse bf16 without
            # use_cpu ("Your setup doesn't support bf16/gpu"); bf16 on the CPU is allowed (warned about below).
            self.use_cpu = True
        super().__post_init__()
        if precision == "no":
            # TrainingArguments takes accelerate's ACCELERATE_MIXED_PRECISION (exported by `accelerate launch` from
            # its config, fp16 in accelerate_config.yaml) when bf16 and fp16 are false: the recipe's choice wins.
            self.mixed_precision = "no"
        self._check_precision_on_cpu()
        if self.load_best_model_at_end and self.eval_strategy == "no":
            raise RecipeError("recipe key 'load_best_model_at_end' needs evaluations to pick the best checkpoint: set "
                              "eval_strategy (and save_strategy) to epoch or steps")
        self._check_scheduler()
        if self.dataloader_pin_memory and (self.use_cpu or not _has_accelerator()):
            # Pinning needs an accelerator: without one torch pins nothing and warns on every DataLoader it builds.
            self.dataloader_pin_memory = False
        if "early_stopping" in self.callbacks and self.eval_strategy == "no":
            raise RecipeError(
                "callbacks: early_stopping needs evaluations: set eval_strategy to epoch or steps in the recipe"
            )
        if "weight_averaging" in self.callbacks and self.load_best_model_at_end:
            # Both decide the final model: the best checkpoint would be loaded, then replaced by the average.
            raise RecipeError(
                "callbacks: weight_averaging makes the final model the mean of the last epochs, and "
                "load_best_model_at_end makes it the best checkpoint: set load_best_model_at_end to false"
            )

    def _check_integrations(self) -> None:
        """A `report_to` whose package is not installed, named before any data is converted (Trainer would fail
        when it builds its callbacks, after the data and the model)."""
        from transformers.integrations.integration_utils import (
            INTEGRATION_TO_CALLBACK,
            get_available_reporting_integrations,
        )

        names = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to or [])
        unknown = [n for n in names if n not in ("none", "all") and n not in INTEGRATION_TO_CALLBACK]
        if unknown:
            raise RecipeError(f"recipe key 'report_to': unknown integration {', '.join(unknown)} (expected none, all "
                              f"or some of {', '.join(INTEGRATION_TO_CALLBACK)})")
        # flyte is never reported available, azure_ml not beside mlflow: Trainer checks those two itself
        unchecked = ("flyte", "azure_ml")
        available = get_available_reporting_integrations()
        missing = [n for n in names if n in INTEGRATION_TO_CALLBACK and n not in unchecked and n not in available]
        if missing:
            raise RecipeError(f"recipe key 'report_to': {', '.join(missing)} is not installed here (available: "
                              f"{', '.join(get_available_reporting_integrations()) or 'none'}); install it or report "
                              "to something else")

    def _check_precision_on_cpu(self) -> None:
        if not (self.use_cpu or not _has_accelerator()):
            return
        if self.mixed_precision == "fp16":
            # accelerate has no fp16 autocast on the CPU: the run would be fp32 and recorded as fp16.
            if self.fp16:
                raise RecipeError("fp16 (recipe key fp16, or mixed_precision: fp16) needs a GPU: on the CPU the run "
                                  "would be fp32 recorded as fp16. Use mixed_precision: auto (fp16 on GPUs, fp32 here) "
                                  "or no, or bf16")
            logger.warning("accelerate's mixed_precision fp16 has no effect on the CPU: training in fp32")
            self.mixed_precision = "no"
        elif self.mixed_precision == "bf16":  # the recipe's, or `accelerate launch`'s
            logger.warning(
                "bf16 on the CPU: on some CPUs oneDNN's bfloat16 3D-convolution gradients are not finite; training "
                "stops with an error if they are (mixed_precision: no trains in fp32)"
            )

    def _check_scheduler(self) -> None:
        """Build the schedule once on a dummy optimiser: a schedule that needs keyword arguments (cosine_with_min_lr
        needs min_lr or min_lr_rate) fails here, by name, not after the data is converted."""
        import torch
        from transformers.optimization import get_scheduler

        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=self.learning_rate)
        try:
            get_scheduler(self.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=1, num_training_steps=10,
                          scheduler_specific_kwargs=dict(self.lr_scheduler_kwargs or {}))
        except (TypeError, ValueError) as err:
            name = getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type)
            raise RecipeError(
                f"recipe keys 'lr_scheduler_type: {name}' and 'lr_scheduler_kwargs: {self.lr_scheduler_kwargs or {}}': "
                f"{err} (a mapping in the YAML, e.g. lr_scheduler_kwargs: {{min_lr_rate: 0.1}}, or JSON on the command "
                "line)"
            ) from None

    def _resolve_mixed_precision(self) -> str:
        # Decided before TrainingArguments.__post_init__, which validates bf16 against the hardware and then
        # records the effective value in `self.mixed_precision` ("no", "fp16" or "bf16").
        choice = self.mixed_precision
        self.requested_mixed_precision = choice  # what recipe.yaml records: `auto` decides again where it runs
        if self.bf16 and self.fp16:
            raise RecipeError("recipe keys 'bf16' and 'fp16' are both true; set one of them (or mixed_precision)")
        asked = "bf16" if self.bf16 else "fp16" if self.fp16 else None
        if choice == "auto":
            import torch

            if asked:  # `--bf16 true` on top of a recipe's `mixed_precision: auto` means bf16, not auto's pick
                choice = asked
            elif torch.cuda.is_available() and not self.use_cpu:
                choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                choice = "no"
        elif asked and asked != choice:
            raise RecipeError(f"recipe key 'mixed_precision: {choice}' contradicts {asked}: true; set only one of them")
        self.bf16 = choice == "bf16"
        self.fp16 = choice == "fp16"
        return choice

    def __getstate__(self) -> dict:
        # `Trainer` pickles its arguments into every checkpoint and the final folder (`training_args.bin`), and
        # `push_to_hub` uploads that file: never let the Hub token travel inside it.
        state = dict(self.__dict__)
        if state.get("hub_token"):
            state["hub_token"] = None
        return state


def _has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ...
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def dataclass_types() -> tuple[type, type, type]:
    """The recipe dataclasses in parse order."""
    return ModelArguments, DataArguments, ThermalTrainingArguments


__all__ = [
    "ModelArguments",
    "DataArguments",
    "ThermalTrainingArguments",
    "dataclass_types",
    "DEFAULT_DATASET",
]
