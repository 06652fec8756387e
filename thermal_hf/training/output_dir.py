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

#: Results of a model: training's (at its end) and `thermal-hf evaluate`'s when its output is the model folder (what
#: `push` reads). An earlier run's describe other weights (and `Trainer.save_metrics` would merge them into
#: ``all_results.json``): a resumed run removes them before it starts.
RESULT_FILES = ("all_results.json", "train_results.json", "eval_results.json", "eval_report.json",
                "eval_predictions.json", "metrics.json", "report.md", "confusion_matrix.png", "predictions.csv")
#: Everything else a training run writes at the top of its output folder (Trainer's and thermal-hf's).
RUN_FILES = ("model.safetensors", "model.safetensors.index.json", "config.json", "video_preprocessor_config.json",
             "training_args.bin", "trainer_state.json", "class_distribution.json", "recipe.yaml", *RESULT_FILES)
#: Left by a run that stopped before it made anything (`recipe.yaml` is written when training starts): not a run.
_DEBRIS = ("recipe.yaml",)
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
    """What an earlier run left in ``output_dir``: its checkpoints and files (names)."""
    if not output_dir.is_dir():
        return []
    shards = sorted(p.name for p in output_dir.iterdir() if _SHARD.match(p.name))
    return [p.name for p in checkpoints(output_dir)] + [n for n in RUN_FILES if (output_dir / n).is_file()] + shards


def _is_debris(output_dir: Path, name: str) -> bool:
    """A file or checkpoint no run can continue from or be confused with: a stopped run's recipe copy, or a
    checkpoint whose save was interrupted."""
    return name in _DEBRIS or ((output_dir / name).is_dir() and not is_complete(output_dir / name))


def _inside(path: str | Path, folder: Path) -> bool:
    path, folder = Path(path).expanduser().resolve(), folder.expanduser().resolve()
    return path == folder or folder in path.parents


def check_output_dir(training_args, resume: str | None, model_source: str | None = None) -> list[str]:
    """Refuse an output folder that holds an earlier run, before any data is converted; returns what the run must
    remove from it first (`remove_earlier_run`, on the main process once every process has checked).

    A run that resumes one of the folder's own checkpoints keeps the checkpoints and the model and drops the
    earlier results (`RESULT_FILES`). ``overwrite_output_dir`` removes everything an earlier run wrote (`RUN_FILES`,
    weight shards, checkpoints), nothing else, and never the model the run starts from (``model_source``). What a
    stopped run left before it made anything (its ``recipe.yaml``, interrupted checkpoints) is removed in any case.
    """
    if not training_args.do_train:
        return []
    output_dir = Path(training_args.output_dir)
    left = previous_run(output_dir)
    debris = [n for n in left if _is_debris(output_dir, n)]
    earlier = [n for n in left if n not in debris]
    if not earlier:
        return debris
    own_resume = resume is not None and _inside(resume, output_dir)
    if own_resume:
        return [n for n in left if n in RESULT_FILES or n in debris]
    if not training_args.overwrite_output_dir:
        shown = ", ".join(earlier[:6]) + (f" and {len(earlier) - 6} more" if len(earlier) > 6 else "")
        how = (f"resume_from_checkpoint {resume} is not one of its checkpoints. " if resume is not None else
               "Continue it with resume_from_checkpoint: true, ")
        raise RecipeError(f"output_dir {output_dir} holds an earlier run ({shown}). {how}train into another "
                          "output_dir, or start over with overwrite_output_dir: true (removes them first)")
    for name, source in (("model_name_or_path", model_source), ("resume_from_checkpoint", resume)):
        if source is not None and _inside(source, output_dir) and Path(source).expanduser().exists():
            raise RecipeError(f"overwrite_output_dir would remove {source}, the recipe's {name}, which is in "
                              f"output_dir {output_dir}: train into another output_dir")
    return left


def remove_earlier_run(output_dir: str | Path, names: list[str]) -> None:
    """Remove what `check_output_dir` listed, saying what and why."""
    output_dir = Path(output_dir)
    debris = [n for n in names if _is_debris(output_dir, n)]
    for name in names:
        path = output_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    if names and len(debris) == len(names):
        logger.info(f"{output_dir}: removed what a stopped run left: {', '.join(debris)}")
    elif names:
        logger.warning(f"{output_dir}: removed the earlier run's {', '.join(names)}")


__all__ = ["RESULT_FILES", "RUN_FILES", "check_output_dir", "checkpoints", "is_complete", "previous_run",
           "remove_earlier_run", "resolve_resume"]
