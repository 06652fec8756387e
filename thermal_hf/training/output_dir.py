"""The training run's output folder: which checkpoint a resume continues, and what an earlier run left there.

`transformers` 5 dropped `overwrite_output_dir` and `Trainer` writes into whatever folder it is given: a second run
into a used folder would mix the two runs' results, rotate away the first run's checkpoints, and a later
``resume_from_checkpoint: true`` would continue the wrong run. Here a used folder is refused unless the run resumes
one of its checkpoints or ``overwrite_output_dir`` clears it, and a resume never starts from a half-written
checkpoint.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from ..errors import RecipeError

logger = logging.getLogger("thermal_hf.train")

#: Results of a model written by training at its end. An earlier run's describe other weights (and
#: `Trainer.save_metrics` would merge them into ``all_results.json``): a resumed run removes them before it starts.
TRAINING_RESULTS = ("all_results.json", "train_results.json", "eval_results.json", "eval_report.json",
                    "eval_predictions.json", "eval_recipe.yaml")
#: `thermal-hf evaluate`'s outputs when written into the model folder (what `push` reads); its generic names count
#: only beside its ``metrics.json``, so a user's own ``report.md`` is neither a run nor removed.
EVALUATE_RESULTS = ("metrics.json", "report.md", "confusion_matrix.png", "predictions.csv")
RESULT_FILES = (*TRAINING_RESULTS, *EVALUATE_RESULTS)
#: Everything else a training run writes at the top of its output folder (Trainer's and thermal-hf's).
RUN_FILES = ("model.safetensors", "model.safetensors.index.json", "config.json", "video_preprocessor_config.json",
             "training_args.bin", "trainer_state.json", "class_distribution.json", "recipe.yaml", *RESULT_FILES)
_SHARD = re.compile(r"^model-\d+-of-\d+\.safetensors$")
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


def asked_to_resume(value) -> bool:
    """A ``resume_from_checkpoint`` value that asks for a resume (``true``, ``last`` or a folder)."""
    return value not in (None, False, "", "false", "False", "no", "none", "None")


def resolve_resume(training_args) -> str | None:
    """``resume_from_checkpoint``: true / "last" -> the last complete checkpoint in output_dir (None if there is none);
    a folder -> that folder, which must be a Trainer checkpoint."""
    value = training_args.resume_from_checkpoint
    if not asked_to_resume(value):
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
    """What an earlier run left in ``output_dir``: its checkpoints and files (names)."""
    if not output_dir.is_dir():
        return []
    evaluated = (output_dir / "metrics.json").is_file()
    files = [n for n in RUN_FILES if (output_dir / n).is_file() and (evaluated or n not in EVALUATE_RESULTS[1:])]
    shards = sorted(p.name for p in output_dir.iterdir() if _SHARD.match(p.name))
    return [p.name for p in checkpoints(output_dir)] + files + shards


def is_own_checkpoint(checkpoint: str | Path, output_dir: Path) -> bool:
    """``checkpoint`` is a ``checkpoint-N`` folder directly in ``output_dir`` (a link to elsewhere counts: only its
    parent is resolved)."""
    checkpoint = Path(checkpoint).expanduser().absolute()
    return bool(_CHECKPOINT.match(checkpoint.name)) and checkpoint.parent.resolve() == output_dir.expanduser().resolve()


def _inside(path: str | Path, folder: str | Path) -> bool:
    path, folder = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return path == folder or folder in path.parents


def check_output_dir(training_args, resume: str | None, model_source: str | None = None) -> list[str]:
    """Refuse an output folder that holds an earlier run, before any data is converted; returns what the run must
    remove from it first (`remove_earlier_run`, on the main process once every process has checked).

    - a run that resumes one of the folder's own checkpoints removes the earlier results (`RESULT_FILES`) and the
      interrupted checkpoints (no `trainer_state.json`); the checkpoints and the model stay;
    - ``resume_from_checkpoint: true`` in a folder holding nothing but interrupted checkpoints (a run stopped while
      saving its first) starts afresh there and removes them;
    - ``overwrite_output_dir`` removes everything an earlier run wrote (`RUN_FILES`, weight shards, checkpoints);
    - anything else is refused. Nothing is ever removed that holds the run's ``model_source`` (model_name_or_path).
    """
    if not training_args.do_train:
        return []
    output_dir = Path(training_args.output_dir)
    left = previous_run(output_dir)
    if not left:
        return []
    interrupted = [n for n in left if (output_dir / n).is_dir() and not is_complete(output_dir / n)]
    if resume is not None and is_own_checkpoint(resume, output_dir):
        removed = [n for n in left if n in RESULT_FILES or n in interrupted]
    elif resume is None and asked_to_resume(training_args.resume_from_checkpoint) and len(interrupted) == len(left):
        removed = left
    elif training_args.overwrite_output_dir:
        removed = left
    else:
        shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
        how = (f"resume_from_checkpoint {resume} is not one of its checkpoints. " if resume is not None else
               "Continue it with resume_from_checkpoint: true, ")
        raise RecipeError(f"output_dir {output_dir} holds an earlier run ({shown}). {how}train into another "
                          "output_dir, or start over with overwrite_output_dir: true (removes them first)")
    for name in removed:
        for key, source in (("model_name_or_path", model_source), ("resume_from_checkpoint", resume)):
            item = output_dir / name
            if source is not None and Path(source).expanduser().exists() and (_inside(source, item)
                                                                              or _inside(item, source)):
                raise RecipeError(f"starting this run would remove {item}, part of the recipe's {key} {source}: "
                                  "train into another output_dir")
    return removed


def remove_earlier_run(output_dir: str | Path, names: list[str]) -> None:
    """Remove what `check_output_dir` listed, saying what. A linked checkpoint loses its link, not its files."""
    output_dir = Path(output_dir)
    for name in names:
        path = output_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if names:
        logger.warning(f"{output_dir}: removed the earlier run's {', '.join(names)}")


__all__ = ["RESULT_FILES", "RUN_FILES", "check_output_dir", "checkpoints", "is_complete", "is_own_checkpoint",
           "previous_run", "remove_earlier_run", "resolve_resume"]
