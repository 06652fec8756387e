"""The training run's output folder: which checkpoint a resume continues, and what an earlier run left there.

`transformers` 5 dropped `overwrite_output_dir` and `Trainer` writes into whatever folder it is given: a second run
into a used folder would mix the two runs' results, rotate away the first run's checkpoints, and a later
``resume_from_checkpoint: true`` would continue the wrong run. Here a used folder is refused unless the run resumes
it or ``overwrite_output_dir`` clears it, and a resume never starts from a half-written checkpoint.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from ..errors import RecipeError

logger = logging.getLogger("thermal_hf.train")

#: Results a run writes at the end: an earlier run's describe other weights, and `Trainer.save_metrics` would merge
#: them into ``all_results.json``. A resumed run removes them before it starts.
RESULT_FILES = ("all_results.json", "train_results.json", "eval_results.json", "eval_report.json",
                "eval_predictions.json")
#: Everything else a training run writes at the top of its output folder (Trainer's and thermal-hf's).
RUN_FILES = ("model.safetensors", "config.json", "video_preprocessor_config.json", "training_args.bin",
             "trainer_state.json", "class_distribution.json", "recipe.yaml", *RESULT_FILES)
#: Written by Trainer last when it saves a checkpoint: a checkpoint without it was interrupted.
TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, by step."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / TRAINER_STATE).is_file()


def _has_optimizer_state(checkpoint: Path) -> bool:
    # optimizer.pt (Trainer), optimizer.bin / optimizer_N (accelerate, FSDP), global_stepN (DeepSpeed).
    return any(p.name.startswith(("optimizer", "global_step")) for p in checkpoint.iterdir())


def resolve_resume(training_args) -> str | None:
    """``resume_from_checkpoint``: true / "last" -> the last complete checkpoint in output_dir (None if there is none);
    a folder -> that folder, which must be a Trainer checkpoint."""
    value = training_args.resume_from_checkpoint
    if value in (None, False, "", "false", "False", "no", "none", "None"):
        return None
    output_dir = Path(training_args.output_dir)
    if value in (True, "true", "True", "yes", "last"):
        found = checkpoints(output_dir)
        complete = [c for c in found if is_complete(c)]
        for skipped in found[found.index(complete[-1]) + 1:] if complete else found:
            logger.warning(f"resume_from_checkpoint: {skipped} has no {TRAINER_STATE} (its run was stopped while "
                           "saving it); not resuming from it")
        if not complete:
            logger.warning(f"resume_from_checkpoint: no complete checkpoint in {output_dir}; training from the start")
            return None
        logger.info(f"resuming from {complete[-1]}")
        return str(complete[-1])
    path = Path(value)
    if not path.is_dir():
        raise RecipeError(f"recipe key 'resume_from_checkpoint': {value} is not a checkpoint folder")
    if not is_complete(path):
        raise RecipeError(f"recipe key 'resume_from_checkpoint': {value} has no {TRAINER_STATE}: not a Trainer "
                          "checkpoint, or one whose run was stopped while saving it (take an earlier checkpoint-N)")
    if not _has_optimizer_state(path):
        raise RecipeError(
            f"recipe key 'resume_from_checkpoint': {value} holds no optimiser state: a finished model folder (or "
            "save_only_model), which training cannot continue. Give a checkpoint-N folder, or fine-tune from it "
            "with model_name_or_path"
        )
    return str(path)


def previous_run(output_dir: Path) -> list[str]:
    """What an earlier run left in ``output_dir``: its checkpoints and result files (names)."""
    if not output_dir.is_dir():
        return []
    return [p.name for p in checkpoints(output_dir)] + [n for n in RUN_FILES if (output_dir / n).is_file()]


def check_output_dir(training_args, resume: str | None) -> list[str]:
    """Refuse an output folder that holds an earlier run, before any data is converted; returns what the run must
    remove from it first (`remove_earlier_run`, on the main process once every process has checked).

    A resumed run keeps the checkpoints and the model and drops the earlier results (`RESULT_FILES`);
    ``overwrite_output_dir`` removes everything the earlier run wrote (`RUN_FILES`, checkpoints), nothing else.
    """
    if not training_args.do_train:
        return []
    output_dir = Path(training_args.output_dir)
    left = previous_run(output_dir)
    if left and resume is None and not training_args.overwrite_output_dir:
        shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
        raise RecipeError(
            f"output_dir {output_dir} holds an earlier run ({shown}). Continue it with resume_from_checkpoint: true, "
            "train into another output_dir, or start over with overwrite_output_dir: true (removes them first)"
        )
    return left if resume is None else [n for n in left if n in RESULT_FILES]


def remove_earlier_run(output_dir: str | Path, names: list[str], resumed: bool) -> None:
    output_dir = Path(output_dir)
    for name in names:
        path = output_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    if names:
        why = "its results describe other weights" if resumed else "overwrite_output_dir"
        logger.warning(f"{output_dir}: removed the earlier run's {', '.join(names)} ({why})")


__all__ = ["RESULT_FILES", "RUN_FILES", "checkpoints", "is_complete", "check_output_dir", "previous_run", "remove_earlier_run", "resolve_resume"]
