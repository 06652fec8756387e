"""Callbacks a recipe switches on by name: ``callbacks: [early_stopping]``.

Logging integrations are not callbacks here: TensorBoard (and the others) come through the standard
``report_to: [tensorboard]`` key of `TrainingArguments`, which `Trainer` turns into its own callbacks.
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import EarlyStoppingCallback, TrainerCallback


def _early_stopping(args) -> TrainerCallback:
    # Stops after `early_stopping_patience` evaluations without `metric_for_best_model` improving by more than
    # `early_stopping_threshold`; with `load_best_model_at_end` the best checkpoint is the one saved at the end.
    return EarlyStoppingCallback(
        early_stopping_patience=args.early_stopping_patience,
        early_stopping_threshold=args.early_stopping_threshold,
    )


#: name -> factory taking the `ThermalTrainingArguments`.
CALLBACKS: dict[str, Callable[..., TrainerCallback]] = {
    "early_stopping": _early_stopping,
}


def build_callbacks(args) -> list[TrainerCallback]:
    """The callbacks named by ``args.callbacks`` (names were validated when the arguments were parsed)."""
    return [CALLBACKS[name](args) for name in args.callbacks]


__all__ = ["CALLBACKS", "build_callbacks"]
