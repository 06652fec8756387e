"""Callbacks a recipe switches on by name: ``callbacks: [early_stopping]``.

Logging integrations are not callbacks here: TensorBoard (and the others) come through the standard
``report_to: [tensorboard]`` key of `TrainingArguments`, which `Trainer` turns into its own callbacks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import EarlyStoppingCallback, TrainerCallback

logger = logging.getLogger(__name__)


def _early_stopping(args) -> TrainerCallback:
    # Stops after `early_stopping_patience` evaluations without `metric_for_best_model` improving by more than
    # `early_stopping_threshold`; with `load_best_model_at_end` the best checkpoint is the one saved at the end.
    return EarlyStoppingCallback(
        early_stopping_patience=args.early_stopping_patience,
        early_stopping_threshold=args.early_stopping_threshold,
    )


class WeightAveragingCallback(TrainerCallback):
    """Stochastic weight averaging (Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
    Generalization", 2018): the model that training ends with is the mean of the weights at the end of every epoch
    from ``start`` (a fraction of the epochs) on, its batch-norm statistics then recomputed on one pass over the
    training clips (the running statistics of the individual epochs do not belong to the averaged weights).

    Why: a mean of points along the end of training lies in a wider region of the loss than any one of them, and a
    wide region is what moves least when the data move (a room or sensor the model has not seen; SWAD, Cha et al.
    2021, applies it to domain generalisation). The average lives in memory only: a run resumed after ``start``
    averages the epochs it trains, and says so.
    """

    def __init__(self, start: float):
        self.start = start
        self.averaged: torch.optim.swa_utils.AveragedModel | None = None

    def _start_epoch(self, args, state) -> float:
        epochs = state.num_train_epochs or args.num_train_epochs
        return self.start * epochs

    def on_train_begin(self, args, state, control, **kwargs):
        if state.epoch and state.epoch > self._start_epoch(args, state):
            logger.warning(f"weight_averaging: resumed at epoch {state.epoch:.2f}, after averaging began (epoch "
                           f"{self._start_epoch(args, state):g}); the average covers only the epochs trained from here.")

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        # state.epoch is the epochs completed (3.0 at the end of the third): with start 0.5 of 20 epochs, the
        # 11th to the 20th are averaged; any start below 1 averages at least the last.
        if state.epoch <= self._start_epoch(args, state) + 1e-6:
            return
        if self.averaged is None:
            self.averaged = torch.optim.swa_utils.AveragedModel(model, use_buffers=False)
        self.averaged.update_parameters(model)

    def on_train_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if self.averaged is None:
            logger.warning("weight_averaging: no epoch ended after averaging began; the model is the last epoch's.")
            return
        with torch.no_grad():
            for target, mean in zip(model.parameters(), self.averaged.module.parameters()):
                target.copy_(mean)
        count = int(self.averaged.n_averaged)
        self.averaged = None
        recompute_batch_norm(model, train_dataloader,
                             progress=not args.disable_tqdm and state.is_local_process_zero)
        logger.info(f"weight_averaging: the model is the mean of the weights at the end of the last {count} epochs.")


@torch.no_grad()
def recompute_batch_norm(model, loader, *, progress: bool = False) -> None:
    """Batch-norm running statistics recomputed as the plain mean over one pass of ``loader`` (training mode, as
    `torch.optim.swa_utils.update_bn`, which cannot read the dict batches of `collate_clips`); under several
    processes, averaged over them."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or loader is None:
        return
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative mean over the pass
    from tqdm.auto import tqdm

    was_training, device = model.training, next(model.parameters()).device
    model.train()
    try:
        for batch in tqdm(loader, desc="batch-norm statistics", disable=not progress, leave=False):
            model(pixel_values=batch["pixel_values"].to(device))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        model.train(was_training)
    # Under several processes each one saw only its shard of the clips (accelerate gives every process the same
    # number of batches), so the mean of their means is the mean over all batches: every process then evaluates,
    # and the main process saves, the same statistics.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for m in norms:
            for stat in (m.running_mean, m.running_var):
                torch.distributed.all_reduce(stat)
                stat.div_(torch.distributed.get_world_size())


def _weight_averaging(args) -> TrainerCallback:
    return WeightAveragingCallback(start=args.weight_averaging_start)


class StopOnNonFinite(TrainerCallback):
    """Stop training, with an error, at the first logged loss or gradient norm that is not finite (`ThermalTrainer`
    also checks the weights before each checkpoint, `non_finite_parameter`).

    `Trainer` goes on after a NaN (it clips a NaN gradient to NaN weights and, with `logging_nan_inf_filter`, logs
    the loss as if nothing happened), then saves the NaN model and evaluates it. Always on (`ThermalTrainer`).
    ``step_was_skipped`` says whether the last optimiser step was skipped: fp16's loss scaler skips a step whose
    gradients overflowed, and that step's infinite norm is calibration, not divergence.
    """

    def __init__(self, step_was_skipped: Callable[[], bool] | None = None):
        self.step_was_skipped = step_was_skipped or (lambda: False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        bad = {key: logs[key] for key in ("loss", "grad_norm")
               if isinstance(logs.get(key), (int, float)) and not math.isfinite(logs[key])}
        if "grad_norm" in bad and args.mixed_precision == "fp16" and self.step_was_skipped():
            del bad["grad_norm"]
        if bad:
            self.stop(args, f"at step {state.global_step}: " + ", ".join(f"{k} {v}" for k, v in bad.items()))

    @staticmethod
    def stop(args, what: str):
        from ..errors import TrainingDivergedError

        hint = (" bf16 on the CPU is a known cause (oneDNN's bfloat16 3D-convolution gradients): train in fp32 "
                "(mixed_precision: no)." if args.mixed_precision == "bf16" and args.device.type == "cpu" else
                " Try a lower learning_rate or max_grad_norm, or fp32 (mixed_precision: no).")
        kept = (f"the checkpoints saved before (in {args.output_dir}) are kept" if getattr(args, "save_strategy", "no") != "no"
                else "no checkpoint was saved (save_strategy: no)")
        raise TrainingDivergedError(f"training diverged {what}. The model is not saved; {kept}.{hint}")


def non_finite_parameter(model) -> str | None:
    """The name of a floating-point parameter or buffer of ``model`` holding a value that is not finite (else None)."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


class WriteIntoCheckpoints(TrainerCallback):
    """``write(checkpoint / name)`` on the main process at every checkpoint (e.g. the run's ``recipe.yaml``)."""

    def __init__(self, name: str, write: Callable[[Path], object]):
        self.name, self.write = name, write

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            self.write(checkpoint / self.name)


#: name -> factory taking the `ThermalTrainingArguments`.
CALLBACKS: dict[str, Callable[..., TrainerCallback]] = {
    "early_stopping": _early_stopping,
    "weight_averaging": _weight_averaging,
}


def build_callbacks(args) -> list[TrainerCallback]:
    """The callbacks named by ``args.callbacks`` (names were validated when the arguments were parsed)."""
    return [CALLBACKS[name](args) for name in args.callbacks]


__all__ = ["CALLBACKS", "StopOnNonFinite", "non_finite_parameter", "WriteIntoCheckpoints", "WeightAveragingCallback", "build_callbacks", "recompute_batch_norm"]
