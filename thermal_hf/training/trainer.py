"""`ThermalTrainer`: `Trainer` with the loss, parameter groups, sampler and warm-up thermal-hf recipes ask for.

Loss (`compute_loss`)
    Cross-entropy or focal loss, with class weights (``class_weighting``), label smoothing
    (``label_smoothing_factor``) and mixup/cutmix soft targets, always computed in float32 (logits are upcast,
    so bf16/fp16 autocast only affects the network). Optionally logit-adjusted (``logit_adjustment_tau``: the
    training prior's log added to the logits inside the loss) and with a coarse-group term
    (``coarse_loss_weight``, for two-level ``coarse-fine`` class names).

    Normalisation (why the numbers add up under gradient accumulation and several processes): the loss of an
    optimizer step is

        sum_i w_i * l_i  /  sum_i w_i

    over every item of the step -- all accumulated micro-batches on all processes -- where ``w_i`` is the
    class weight of item i's label (1 without weighting; for soft mixup targets, the target-weighted mix).
    That is PyTorch's ``cross_entropy(weight=w, reduction="mean")`` over the whole effective batch, so
    batch 4 x accumulation 1 and batch 2 x accumulation 2 give the same gradients, and one process with
    batch 8 equals two with batch 4. The per-batch weighted mean (dividing each micro-batch by its own weight
    sum) is not accumulation-friendly: a micro-batch of rare classes would count as much as one of common ones.
    The denominator is computed in `get_batch_samples` (summed over processes when
    ``average_tokens_across_devices``, the default) and arrives as ``num_items_in_batch``; each micro-batch
    returns its share, so `loss_is_scaled_for_ga` is True. During evaluation (no ``num_items_in_batch``) the
    eval loss is the batch's weighted mean.

Optimizer (`create_optimizer`)
    Only the parameter groups change: backbone parameters get ``learning_rate * backbone_lr_multiplier``,
    the classification head ``learning_rate``, and each keeps `Trainer.get_decay_parameter_names`' split (no
    weight decay on norms and biases). The groups are handed to `Trainer.create_optimizer` through the
    ``params`` optimizer kwarg it already supports, so optimizer selection (`optim`), DeepSpeed/FSDP wrapping
    order and SageMaker handling stay the library's.

Sampling (`_get_train_sampler`)
    ``sampling: class_balanced`` draws items with probability proportional to 1 / (their class count), with
    replacement, ``len(dataset)`` draws per epoch. The draw is seeded by ``data_seed``/``seed`` + epoch and is
    identical on every process, so accelerate's batch sharding gives each process its own part of one sequence.

Warm-up (`create_scheduler`)
    ``warmup_epochs`` is converted to steps from the optimizer steps per epoch; ``warmup_steps`` (steps, or a
    ratio when < 1) is `TrainingArguments`' own.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from .callbacks import StopOnNonFinite, build_callbacks, non_finite_parameter
from .data import SamplerDraw

logger = logging.get_logger(__name__)

def _is_factory(optimizer_cls) -> bool:
    try:
        from transformers.trainer_optimizer import is_optimizer_factory
    except ImportError:  # older transformers: no optimizer factories
        return False
    return is_optimizer_factory(optimizer_cls)


_NORM_TYPES = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.LocalResponseNorm)

# Prefixes wrappers put in front of parameter names (DDP, FSDP, torch.compile).
_WRAPPER_PREFIX = re.compile(r"(^|\.)(module|_fsdp_wrapped_module|_orig_mod|_checkpoint_wrapped_module)\.")


# ---------------------------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------------------------
def classification_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    focal_gamma: float | None = None,
    fine_to_coarse: torch.Tensor | None = None,
    coarse_weight: float = 0.0,
    logit_offsets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item weighted losses and weights: ``(w_i * l_i, w_i)``, each ``(B,)`` float32.

    ``targets``: class ids ``(B,)`` or soft targets ``(B, K)`` (mixup / cutmix). ``l_i`` is the cross-entropy
    against the (label-smoothed) target, times ``(1 - p_i) ** focal_gamma`` for the focal loss (``p_i`` the
    predicted probability of the target). ``w_i`` is the target's class weight (1 without weights). The loss of
    a set of items is ``sum(w_i * l_i) / sum(w_i)``.

    Hierarchy: with ``fine_to_coarse`` (``(K,)`` group id of every class) and ``coarse_weight`` > 0, ``l_i`` gains
    ``coarse_weight`` times the cross-entropy of the coarse group, whose log-probability is the log-sum of its
    classes' probabilities: a wrong class in the right group (bed vs floor) costs less than a wrong posture.

    Logit adjustment: ``logit_offsets`` ``(K,)`` (``tau * log prior``) are added to the logits inside the loss only,
    so a rare class must win by a margin in training and the raw logits are prior-free at inference.
    """
    logits = logits.float()
    if logit_offsets is not None:
        logits = logits + logit_offsets.to(logits.device)
    num_labels = logits.shape[-1]
    log_probs = F.log_softmax(logits, dim=-1)
    if targets.ndim == 1:
        target_dist = F.one_hot(targets.long(), num_labels).to(log_probs.dtype)
    else:
        target_dist = targets.to(log_probs.dtype)
    smoothed = target_dist * (1.0 - label_smoothing) + label_smoothing / num_labels if label_smoothing else target_dist
    losses = -(smoothed * log_probs).sum(dim=-1)
    if focal_gamma is not None:
        p_target = (target_dist * log_probs.exp()).sum(dim=-1).clamp(0.0, 1.0)
        losses = losses * (1.0 - p_target).pow(focal_gamma)
    if fine_to_coarse is not None and coarse_weight > 0:
        index = fine_to_coarse.to(log_probs.device).long()
        num_coarse = int(index.max()) + 1
        # log p(group) = logsumexp of its classes' log-probabilities; target mass summed per group likewise.
        grouped = torch.full((logits.shape[0], num_coarse, num_labels), float("-inf"), device=log_probs.device)
        member = F.one_hot(index, num_coarse).T.bool()  # (G, K)
        grouped = torch.where(member.unsqueeze(0), log_probs.unsqueeze(1), grouped)
        coarse_log_probs = torch.logsumexp(grouped, dim=-1)
        coarse_target = target_dist @ F.one_hot(index, num_coarse).to(log_probs.dtype)
        losses = losses + coarse_weight * -(coarse_target * coarse_log_probs).sum(dim=-1)
    if class_weights is not None:
        weights = target_dist @ class_weights.to(log_probs)
    else:
        weights = torch.ones_like(losses)
    return weights * losses, weights


# ---------------------------------------------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------------------------------------------
class ClassBalancedSampler(Sampler[int]):
    """Draws indices with probability ~ 1 / count(label): every class present is equally likely per draw.

    The same ``seed`` and epoch give the same sequence in every process (accelerate shards it by batches);
    ``set_epoch`` (called by accelerate / `Trainer` each epoch) changes the sequence from one epoch to the next.
    """

    def __init__(self, labels, num_samples: int | None = None, seed: int = 0):
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size == 0:
            raise ValueError("ClassBalancedSampler needs at least one item")
        counts = np.bincount(labels)
        self.weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
        self.num_samples = int(num_samples or len(labels))
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator).tolist()
        # Each index with its position: DataLoader workers augment the draws of one item apart (SamplerDraw).
        yield from (SamplerDraw(index, draw) for draw, index in enumerate(draws))

    def __len__(self) -> int:
        return self.num_samples


# ---------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------
def thermal_training_arguments(args: TrainingArguments | None):
    """``args`` as `ThermalTrainingArguments`: returned as is when it is one, else its `TrainingArguments` values
    with the thermal keys at their defaults (``None``: Trainer's default ``output_dir="tmp_trainer"``)."""
    from thermal_hf.configs import ThermalTrainingArguments

    if isinstance(args, ThermalTrainingArguments):
        return args
    if args is None:
        return ThermalTrainingArguments(output_dir="tmp_trainer")
    if not isinstance(args, TrainingArguments):
        raise TypeError(f"ThermalTrainer: args must be TrainingArguments or ThermalTrainingArguments; got "
                        f"{type(args).__name__}")
    values = {}
    for f in dataclasses.fields(args):
        if f.init:
            value = getattr(args, f.name)
            if isinstance(value, list) and value and isinstance(value[0], enum.Enum):
                value = [v.value for v in value]
            values[f.name] = value.value if isinstance(value, enum.Enum) else value
    logger.info("ThermalTrainer: TrainingArguments taken as ThermalTrainingArguments (thermal keys at their defaults)")
    return ThermalTrainingArguments(**values)


class ThermalTrainer(Trainer):
    """`Trainer` for thermal clips; see the module docstring for what each override does.

    Extra arguments (everything else is `Trainer`'s):
        class_weights: ``(K,)`` loss weights per class id. Default: computed from the training dataset's
            class counts with ``args.class_weighting`` (``thermal_hf.data.class_weights``); ``None`` with
            ``class_weighting: none``.
        sampling: ``"natural"`` or ``"class_balanced"``.
        mixup_alpha / cutmix_alpha: Beta parameters of batch mixup / cutmix during training (0 = off).
    Callbacks named in ``args.callbacks`` are added to those passed in.
    """

    # The loss is normalised over the whole optimizer step by `num_items_in_batch` (see `get_batch_samples`).
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args,
        class_weights=None,
        sampling: str = "natural",
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        **kwargs,
    ):
        # The loss, optimiser and callbacks read thermal keys (loss, focal_gamma, backbone_lr_multiplier, ...):
        # plain `TrainingArguments` (or none, Trainer's default) become `ThermalTrainingArguments` with those
        # keys at their defaults, as TRL's trainers do with their configs.
        if len(args) > 1:
            args = (args[0], thermal_training_arguments(args[1]), *args[2:])
        else:
            kwargs["args"] = thermal_training_arguments(kwargs.get("args"))
        super().__init__(*args, **kwargs)
        self._check_num_frames()
        self.add_callback(StopOnNonFinite(lambda: bool(getattr(self.accelerator, "optimizer_step_was_skipped", False))))
        for callback in build_callbacks(self.args):
            self.add_callback(callback)
        if sampling not in ("natural", "class_balanced"):
            raise ValueError(f"sampling must be natural or class_balanced; got {sampling!r}")
        self.sampling = sampling
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self._mix_generator: torch.Generator | None = None
        self._items_trained = 0
        if class_weights is None:
            class_weights = self._class_weights_from_dataset()
        self.class_weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.logit_offsets = self._logit_offsets_from_dataset()
        if self.class_weights is not None:
            logger.info(f"class weights ({self.args.class_weighting}): {[round(w, 4) for w in self.class_weights.tolist()]}")

    def _check_num_frames(self) -> None:
        # The model takes any clip length, so a processor saved beside it with another num_frames would make the
        # pipeline feed it clips of a length it never trained on, without an error.
        processor_frames = getattr(self.processing_class, "num_frames", None)
        model_frames = getattr(getattr(self.model, "config", None), "num_frames", None)
        if processor_frames is not None and model_frames is not None and processor_frames != model_frames:
            logger.warning(f"the processor gives num_frames={processor_frames} but the model config has "
                           f"num_frames={model_frames}; both are saved together, set them to the training clips' length")

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    def _class_weights_from_dataset(self):
        method = getattr(self.args, "class_weighting", "none")
        if method == "none":
            return None
        if self.train_dataset is None or not hasattr(self.train_dataset, "class_counts"):
            raise ValueError(
                f"class_weighting={method!r} needs class_weights= or a training dataset with class_counts()"
            )
        from thermal_hf.data.class_weights import class_weights

        counts = self.train_dataset.class_counts(self.num_labels)
        id2label = self.model.config.id2label
        names = [str(id2label.get(i, i)) for i in range(self.num_labels)]
        return class_weights(counts, method=method, beta=self.args.class_weight_beta, class_names=names)

    def _logit_offsets_from_dataset(self) -> torch.Tensor | None:
        """``tau * log(prior)`` of the training classes; 0 for classes absent from training (no margin to learn)."""
        tau = getattr(self.args, "logit_adjustment_tau", 0.0)
        if not tau:
            return None
        if self.train_dataset is None or not hasattr(self.train_dataset, "class_counts"):
            raise ValueError("logit_adjustment_tau needs a training dataset with class_counts()")
        counts = np.asarray(self.train_dataset.class_counts(self.num_labels), dtype=np.float64)
        prior = counts / counts.sum()
        offsets = np.where(counts > 0, tau * np.log(np.maximum(prior, 1e-12)), 0.0)
        logger.info(f"logit adjustment (tau {tau}): {np.round(offsets, 2).tolist()}")
        return torch.as_tensor(offsets, dtype=torch.float32)

    # ---- loss -----------------------------------------------------------------------------------------------
    def _item_weights(self, labels: torch.Tensor) -> torch.Tensor:
        if self.class_weights is None:
            return torch.ones(labels.shape[0], dtype=torch.float32, device=labels.device)
        return self.class_weights.to(labels.device)[labels.long()]

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Collect the step's micro-batches and the loss denominator: the sum of their items' class weights."""
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batch_samples or "labels" not in batch_samples[0]:
            return batch_samples, None
        total = sum(self._item_weights(batch["labels"]).sum() for batch in batch_samples).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            total = self.accelerator.gather(total.reshape(1)).sum()
        return batch_samples, total

    def _mix(self, pixel_values: torch.Tensor, labels: torch.Tensor):
        from thermal_hf.data.transforms import mixup_cutmix

        if self._mix_generator is None:
            self._mix_generator = torch.Generator().manual_seed(self.args.seed + 7919 * self.args.process_index)
        return mixup_cutmix(
            pixel_values, labels, self.num_labels, self.mixup_alpha, self.cutmix_alpha, generator=self._mix_generator
        )

    def _fine_to_coarse(self) -> torch.Tensor | None:
        """Group id of every class from the two-level class names (None without a hierarchy or its loss)."""
        if not self.args.coarse_loss_weight:
            return None
        if not hasattr(self, "_coarse_index"):
            from .metrics import coarse_groups

            config = self.model.config
            groups = coarse_groups([config.id2label[i] for i in range(config.num_labels)])
            if groups is None:
                raise ValueError("coarse_loss_weight needs two-level 'coarse-fine' class names; these have no dash")
            self._coarse_index = torch.as_tensor(groups[1])
        return self._coarse_index

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        if labels is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        targets = labels
        if model.training:
            self._items_trained += int(labels.shape[0])  # training items read so far (see _save_rng_state)
        if model.training and (self.mixup_alpha > 0 or self.cutmix_alpha > 0):
            inputs["pixel_values"], targets = self._mix(inputs["pixel_values"], labels)
        # The model is called without labels: the loss is computed here, in float32.
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weighted, weights = classification_loss(
            logits,
            targets,
            class_weights=self.class_weights,
            label_smoothing=self.args.label_smoothing_factor,
            focal_gamma=self.args.focal_gamma if self.args.loss == "focal" else None,
            fine_to_coarse=self._fine_to_coarse(),
            coarse_weight=self.args.coarse_loss_weight,
            logit_offsets=self.logit_offsets,
        )
        if num_items_in_batch is None:
            loss = weighted.sum() / weights.sum().clamp_min(1e-12)
        else:
            loss = weighted.sum() / torch.as_tensor(num_items_in_batch, device=weighted.device).clamp_min(1e-12)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                # DDP averages gradients over processes; the denominator is already the global one.
                loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    # ---- random streams of a resumed run ---------------------------------------------------------------------
    # Trainer saves and restores torch's, numpy's and Python's global generators; the augmentation stream (the
    # dataset's own generator) and the mixup / cutmix one are saved beside them, in JSON (nothing to unpickle).
    def _augmentation_state_path(self, folder) -> Path:
        return Path(folder) / f"augmentation_rng_state_{self.args.process_index}.json"

    def check_weights(self, when: str) -> None:
        """`TrainingDivergedError` if a weight or buffer is not finite. Every process decides together (sharded
        weights differ per process)."""
        bad = non_finite_parameter(self.model)
        flag = torch.tensor([float(bad is not None)], device=self.args.device)
        if self.args.world_size > 1:
            flag = self.accelerator.reduce(flag, reduction="sum")
        if float(flag.item()) > 0:
            StopOnNonFinite.stop(self.args, f"{when}: weights that are not finite"
                                 + (f" ({bad})" if bad else " (on another process)"))

    def _save_checkpoint(self, model, trial) -> None:
        # Before anything is written or rotated away: a checkpoint of weights that are not finite is never made, and
        # the checkpoints before it stay.
        self.check_weights(f"at step {self.state.global_step}")
        return super()._save_checkpoint(model, trial)

    def _save_rng_state(self, output_dir) -> None:
        super()._save_rng_state(output_dir)
        random_state = getattr(self.train_dataset, "random_state", None)
        state = {"dataset": random_state(self._items_trained) if random_state is not None else None,
                 "mix": None if self._mix_generator is None else self._mix_generator.get_state().tolist()}
        self._augmentation_state_path(output_dir).write_text(json.dumps(state) + "\n")

    def _run_epoch(self, *args, **kwargs):
        # DataLoader workers key each item's augmentation on the epoch (ThermalClipDataset); accelerate forwards
        # set_epoch to the dataset only when no sampler takes it, so it is set here, on every process.
        set_epoch = getattr(self.train_dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(inspect.signature(super()._run_epoch).bind(*args, **kwargs).arguments["epoch"])
        return super()._run_epoch(*args, **kwargs)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint is True:  # as Trainer reads it: the last checkpoint of output_dir
            from transformers.trainer_utils import get_last_checkpoint

            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir) or True
        if isinstance(resume_from_checkpoint, (str, os.PathLike)):
            self._restore_augmentation_state(resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _load_callback_state(self) -> None:
        # Trainer rebuilds a stateful callback (early stopping) from the checkpoint's arguments, so a patience or
        # threshold changed for the resumed run would be dropped silently. The recipe's arguments win; the
        # callback's counters (the patience used so far) still come from the checkpoint.
        if self.args.restore_callback_states_from_checkpoint:
            current = {type(c).__name__: c.state()["args"] for c in self.callback_handler.callbacks
                       if hasattr(c, "state") and callable(c.state)}
            for name, stored in self.state.stateful_callbacks.items():
                for entry in stored if isinstance(stored, list) else [stored]:
                    saved, now = entry.get("args", {}), current.get(name)
                    if now is not None and saved != now:
                        changed = ", ".join(f"{k} {saved.get(k)} -> {v}" for k, v in now.items() if saved.get(k) != v)
                        logger.warning(f"{name}: the checkpoint's {changed} replaced by the recipe's for the "
                                       "resumed run")
                        entry["args"] = dict(now)
        super()._load_callback_state()

    def _restore_augmentation_state(self, checkpoint) -> None:
        # Before the first batch: Trainer restores its own generators only after fetching it.
        path = self._augmentation_state_path(checkpoint)
        if not path.is_file():
            logger.info(f"{path.name} not in {checkpoint}: the resumed run's augmentations start a new stream")
            return
        state = json.loads(path.read_text())
        if state.get("dataset") is not None and hasattr(self.train_dataset, "set_random_state"):
            self.train_dataset.set_random_state(state["dataset"])
            self._items_trained = int(state["dataset"]["consumed"])
        if state.get("mix") is not None:
            self._mix_generator = torch.Generator()
            self._mix_generator.set_state(torch.tensor(state["mix"], dtype=torch.uint8))

    # ---- optimizer ------------------------------------------------------------------------------------------
    def get_decay_parameter_names(self, model) -> list[str]:
        """`Trainer`'s split (no decay on biases and LayerNorm / names containing "norm"), plus every parameter
        of a normalisation layer by type: pytorchvideo names its BatchNorms ``norm_a``/``norm_b``/``norm_c``,
        which the library's name patterns miss."""
        names = super().get_decay_parameter_names(model)
        norm_params = {
            f"{module_name}.{param_name}" if module_name else param_name
            for module_name, module in model.named_modules()
            if isinstance(module, _NORM_TYPES)
            for param_name, _ in module.named_parameters(recurse=False)
        }
        return [name for name in names if name not in norm_params]

    def head_parameter_names(self, model) -> set[str]:
        """Names of the classification head's parameters (unwrapped names)."""
        unwrapped = self.accelerator.unwrap_model(model)
        if hasattr(unwrapped, "get_head_parameter_names"):
            return set(unwrapped.get_head_parameter_names())
        raise ValueError(
            f"{type(unwrapped).__name__} has no get_head_parameter_names(); set backbone_lr_multiplier: 1.0"
        )

    def build_param_groups(self, model) -> list[dict]:
        """Four groups: {backbone, head} x {decay, no decay}; empty groups are left out."""
        decay = {_WRAPPER_PREFIX.sub(r"\1", n) for n in self.get_decay_parameter_names(model)}
        head = self.head_parameter_names(model)
        lr = self.args.learning_rate
        multiplier = self.args.backbone_lr_multiplier
        groups: dict[tuple[bool, bool], dict] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            clean = _WRAPPER_PREFIX.sub(r"\1", name)
            is_head, is_decay = clean in head, (clean in decay or name in decay)
            key = (is_head, is_decay)
            if key not in groups:
                groups[key] = {
                    "params": [],
                    "weight_decay": self.args.weight_decay if is_decay else 0.0,
                    "lr": lr if is_head else lr * multiplier,
                    "group_name": f"{'head' if is_head else 'backbone'}{'' if is_decay else '_no_decay'}",
                }
            groups[key]["params"].append(param)
        if not any(key[0] for key in groups):
            logger.warning("no classification-head parameter found: every parameter gets the backbone learning rate")
        return [groups[k] for k in sorted(groups, key=lambda k: (k[0], not k[1]))]

    def create_optimizer(self, model=None):
        if self.optimizer is not None or self.args.backbone_lr_multiplier == 1.0:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        if self.optimizer_cls_and_kwargs is not None:
            optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
        else:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        if any(k in optimizer_kwargs for k in ("params", "model", "optimizer_dict")) or _is_factory(optimizer_cls):
            logger.warning(
                f"optim={self.args.optim} builds its own parameter groups: backbone_lr_multiplier is not applied"
            )
            return super().create_optimizer(model)
        groups = self.build_param_groups(opt_model)
        saved = self.optimizer_cls_and_kwargs
        # `Trainer.create_optimizer` uses a `params` kwarg instead of its own two groups (its GaLore path).
        self.optimizer_cls_and_kwargs = (optimizer_cls, {**optimizer_kwargs, "params": groups})
        try:
            return super().create_optimizer(model)
        finally:
            self.optimizer_cls_and_kwargs = saved

    # ---- scheduler ------------------------------------------------------------------------------------------
    def update_steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (per process), as `Trainer` counts them."""
        args = self.args
        batches = math.ceil(len(self.train_dataset) / args.per_device_train_batch_size)
        if args.dataloader_drop_last:
            batches = len(self.train_dataset) // args.per_device_train_batch_size
        per_process = math.ceil(batches / max(1, args.world_size))
        return max(1, math.ceil(per_process / args.gradient_accumulation_steps))

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        warmup_epochs = getattr(self.args, "warmup_epochs", 0.0)
        if self.lr_scheduler is None and warmup_epochs > 0 and self.train_dataset is not None:
            steps = math.ceil(warmup_epochs * self.update_steps_per_epoch())
            # An int >= 1 is read as steps by `TrainingArguments.get_warmup_steps`; kept in args so the
            # saved training_args.bin records the warm-up actually used.
            self.args.warmup_steps = min(steps, num_training_steps)
            logger.info(f"warmup_epochs={warmup_epochs} -> warmup_steps={self.args.warmup_steps}")
        return super().create_scheduler(num_training_steps, optimizer)

    # ---- sampler --------------------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.sampling == "class_balanced" and dataset is not None:
            if not hasattr(dataset, "labels"):
                raise ValueError("sampling=class_balanced needs a training dataset with a `labels` array")
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return ClassBalancedSampler(dataset.labels, seed=seed)
        return super()._get_train_sampler(train_dataset)


__all__ = ["ThermalTrainer", "ClassBalancedSampler", "classification_loss"]
