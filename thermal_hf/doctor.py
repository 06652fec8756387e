"""``thermal-hf doctor RECIPE.yaml [--key value ...]``: will this recipe train here? A checklist and a verdict.

Checks, in the order training meets them:

1. recipe: parses (unknown keys, bad values and key combinations are reported as training would);
2. environment: Python, torch, CUDA devices (count, names, bf16 support), accelerate and its config, the
   precision the recipe resolves to, loader workers against the CPU cores (a warning when they outnumber them);
3. data: the folder exists and is valid (a raw folder is validated, then converted into the same cache training
   uses; a converted folder is loaded), both splits present, class counts;
4. pretrained checkpoint (if the recipe names one): present and importable into the architecture;
5. model: built as training builds it; one batch of ``per_device_train_batch_size`` clips loaded through the
   training dataset and pushed forward and backward once on the device, in the recipe's precision;
6. output folder: writable (and whether a run there would resume or start over).

Exit status: 0 when nothing would fail (warnings allowed), 1 when a check failed, 2 when the recipe or command line
is refused (as `train` would refuse it).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RecipeError, ThermalDataError

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"


@dataclass
class Checklist:
    items: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, status: str, name: str, detail: str = "") -> None:
        self.items.append((status, name, detail))
        print(f"[{status:^4}] {name}" + (f": {detail}" if detail else ""), flush=True)

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        return [item for item in self.items if item[0] == FAIL]

    def verdict(self) -> str:
        warnings = sum(1 for s, _, _ in self.items if s == WARN)
        if self.failures:
            names = ", ".join(name for _, name, _ in self.failures)
            return f"NOT READY: {len(self.failures)} check(s) failed ({names}); fix them before training."
        return "READY: this recipe should train here" + (f" ({warnings} warning(s) above)." if warnings else ".")


def _short(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if len(text) < 800 else text[:800] + " ..."


def _cpu_speed_note(model_args) -> str:
    """What the CPU means for this recipe's network: R50 at 256 x 384 wants a GPU, the native 40 x 60 one does not."""
    from .models.thermal_slowfast import ThermalSlowFastConfig

    defaults = ThermalSlowFastConfig()
    depth = getattr(model_args, "model_depth", None) or defaults.model_depth
    height, width = getattr(model_args, "image_size", None) or defaults.image_size
    if depth >= 50 or height * width > 128 * 192:
        return (f" (slow for SlowFast R{depth} at {height} x {width}; R50 at 256 x 384 took about 40 min an epoch of the "
                "real data on 2 cores: train on a GPU)")
    return f" (SlowFast R{depth} at {height} x {width}: small enough for the CPU)"


def check_environment(checklist: Checklist, training_args, model_args=None) -> None:
    import accelerate
    import torch
    import transformers

    checklist.add(OK, "python", f"{platform.python_version()} ({sys.executable})")
    checklist.add(OK, "libraries", f"torch {torch.__version__}, transformers {transformers.__version__}, "
                                   f"accelerate {accelerate.__version__}")
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        bf16 = torch.cuda.is_bf16_supported()
        checklist.add(OK, "CUDA", f"{len(names)} device(s): {', '.join(names)}; bf16 {'yes' if bf16 else 'no'}")
    elif training_args.use_cpu:
        checklist.add(OK, "CUDA", "not used (use_cpu: true)")
    else:
        checklist.add(WARN, "CUDA", "no GPU visible: training runs on the CPU" + _cpu_speed_note(model_args))
    from accelerate.commands.config import default_config_file

    launched = {k: v for k, v in os.environ.items() if k.startswith("ACCELERATE_")}
    if Path(default_config_file).is_file():
        checklist.add(OK, "accelerate config", f"{default_config_file}")
    else:
        checklist.add(OK, "accelerate config", "none saved (defaults; or pass --config_file accelerate_config.yaml)")
    checklist.add(
        OK,
        "processes",
        f"world size {training_args.world_size} on {training_args.device}"
        + (f" (launched by accelerate: {sorted(launched)})" if launched else ""),
    )
    checklist.add(OK, "precision", f"{training_args.mixed_precision} (bf16={training_args.bf16}, fp16={training_args.fp16})")
    check_loader_workers(checklist, training_args)


def _cpu_cores() -> int:
    # The cores this process may run on (a container's or taskset's limit), not the machine's count.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_loader_workers(checklist: Checklist, training_args) -> None:
    """Loader workers beyond the cores compete with the training processes for them (each clip is decoded and
    augmented on the CPU): slower, not faster."""
    workers, cores = training_args.dataloader_num_workers, _cpu_cores()
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", training_args.world_size))  # on this machine
    busy = processes * (workers + 1)
    detail = f"{workers} per process x {processes} process(es) on {cores} CPU core(s)"
    if workers and busy > cores:
        fit = max(cores // processes - 1, 0)
        checklist.add(WARN, "loader workers", f"{detail}: {busy} processes for {cores} cores compete for them; "
                      f"--dataloader_num_workers {fit} fits this machine")
    else:
        checklist.add(OK, "loader workers", detail)


def check_data(checklist: Checklist, data_args, training_args):
    """Returns the converted dataset (or None)."""
    from .data.convert import _is_raw_dataset, is_converted_dataset, load_converted
    from .data.location import is_hub_dataset_id, resolve_dataset_location

    if not data_args.dataset:
        checklist.add(FAIL, "data", "recipe key 'dataset' is not set (--dataset PATH)")
        return None
    path = Path(data_args.dataset).expanduser()
    if not path.exists() and is_hub_dataset_id(data_args.dataset):
        try:  # a Hub dataset repo: downloaded into the Hugging Face cache (as training would), checked there
            path = resolve_dataset_location(data_args.dataset, local_files_only=data_args.synthetic_if_missing)
            checklist.add(OK, "data source", f"{data_args.dataset}: Hub dataset repo, at {path}")
        except ThermalDataError as err:
            if not data_args.synthetic_if_missing:
                checklist.add(FAIL, "data folder", str(err))
                return None
    if not path.exists() and data_args.synthetic_if_missing:
        # Checking must not write: generating here would leave a synthetic folder behind a typo in the path.
        checklist.add(WARN, "data folder", f"{path} missing: training will generate a synthetic dataset there "
                      "(synthetic_if_missing: true); the data checks are skipped until it exists")
        return None
    if not path.exists():
        checklist.add(FAIL, "data folder", f"{path} not found (point the recipe at it with --dataset PATH)")
        return None
    elif is_converted_dataset(path):
        checklist.add(OK, "data folder", f"{path} (converted dataset)")
    elif _is_raw_dataset(path):
        from .data.recordings import DatasetSource

        started = time.perf_counter()
        try:
            source = DatasetSource.open(path, skip_invalid=data_args.skip_invalid)
        except ValueError as err:
            checklist.add(FAIL, "data validation", _short(err))
            return None
        detail = f"{path}: {len(source.recordings)} recordings, {len(source.class_names)} classes, " + ", ".join(
            f"{split} {len(ann.images)} keyframes / {len(ann.annotations)} persons" for split, ann in source.splits.items()
        )
        checklist.add(WARN if source.skipped else OK, "data validation",
                      detail + (f"; {len(source.skipped)} sample(s) skipped" if source.skipped else "")
                      + f" ({time.perf_counter() - started:.1f} s)")
    else:
        checklist.add(FAIL, "data folder", f"{path}: neither a raw dataset (frames/, annotations/) nor a converted one")
        return None
    try:
        from .train import resolve_dataset

        converted = resolve_dataset(data_args, training_args)
        dataset = load_converted(converted)
    except ValueError as err:
        checklist.add(FAIL, "data conversion", _short(err))
        return None
    missing = [s for s in (data_args.train_split, data_args.eval_split) if s not in dataset]
    if missing:
        checklist.add(FAIL, "splits", f"{converted} has no split(s) {missing} (has {list(dataset)})")
        return None
    train = dataset[data_args.train_split]
    names = train.features["label"].names
    import numpy as np

    counts = np.bincount(np.asarray(train.with_format("numpy")["label"]), minlength=len(names))
    absent = [names[i] for i in np.flatnonzero(counts == 0)]
    shape = train.features["frames"].shape
    checklist.add(
        WARN if absent else OK,
        "dataset",
        f"{converted}: train {len(train)}, {data_args.eval_split} {len(dataset[data_args.eval_split])} clips of "
        f"{shape}; rarest present class {int(counts[counts > 0].min())} clips"
        + (f"; {len(absent)} class(es) absent from train: {', '.join(absent)}" if absent else ""),
    )
    return dataset


def check_pretrained(checklist: Checklist, model_args, data_args, training_args, label_names, tmp: Path):
    if not model_args.pretrained:
        if model_args.model_name_or_path:
            ok = (Path(model_args.model_name_or_path) / "config.json").is_file()
            checklist.add(OK if ok else FAIL, "model folder", f"{model_args.model_name_or_path}"
                          + ("" if ok else ": no config.json (expected a folder written by save_pretrained)"))
            return model_args.model_name_or_path if ok else False
        checklist.add(SKIP, "pretrained checkpoint", "none (training from scratch)")
        return None
    from .train import _pretrained_format

    path = Path(model_args.pretrained).expanduser()
    if not path.is_file():
        checklist.add(FAIL, "pretrained checkpoint", f"{path} not found (thermal-hf download-weights slowfast_r50)")
        return False
    from .models.thermal_slowfast.convert_checkpoint import import_checkpoint

    overrides = {k: v for k, v in model_args.config_overrides().items() if k != "model_depth"}
    try:
        target = import_checkpoint(
            path, tmp / "pretrained", format=_pretrained_format(model_args), num_labels=len(label_names),
            labels=label_names, model_depth=model_args.model_depth, num_frames=data_args.num_frames, **overrides,
        )
    except Exception as err:  # noqa: BLE001  (a checklist reports every failure, it does not stop at one)
        checklist.add(FAIL, "pretrained checkpoint", f"{path}: {_short(err)}")
        return False
    checklist.add(OK, "pretrained checkpoint", f"{path} imports ({_pretrained_format(model_args)})")
    return str(target)


def check_model(checklist: Checklist, model_args, data_args, training_args, dataset, source, scratch: Path) -> None:
    import torch

    from .train import build_model, build_processor
    from .training.data import ThermalClipDataset, collate_clips

    label_names = list(dataset[data_args.train_split].features["label"].names)
    try:
        processor = build_processor(model_args, data_args, source)
        model = build_model(model_args, data_args, training_args, label_names, source)
    except Exception as err:  # noqa: BLE001
        checklist.add(FAIL, "model", _short(err))
        return
    params = sum(p.numel() for p in model.parameters()) / 1e6
    config = model.config
    timing = (f" ({processor.frame_rate:g} frames/s: {config.num_frames / processor.frame_rate:.1f} s windows)"
              if processor.frame_rate else " (consecutive recorded frames)")
    checklist.add(OK, "model", f"SlowFast R{config.model_depth}, {params:.1f} M parameters, {config.num_frames} frames"
                               f"{timing} at {tuple(config.image_size)}, {config.num_labels} classes")
    try:
        train = ThermalClipDataset(dataset[data_args.train_split], processor, data_args.augmentation_config(),
                                   train=True, seed=training_args.seed)
        size = min(training_args.per_device_train_batch_size, len(train))
        started = time.perf_counter()
        batch = collate_clips([train[i] for i in range(size)])
        load_s = time.perf_counter() - started
    except Exception as err:  # noqa: BLE001
        checklist.add(FAIL, "batch", f"loading {size} clips: {_short(err)}")
        return
    checklist.add(OK, "batch", f"pixel_values {tuple(batch['pixel_values'].shape)} loaded in {load_s:.2f} s")

    try:  # the trainer training builds: its loss (class weights, focal, mixup, ...), sampler and callbacks
        import copy

        from .training.trainer import ThermalTrainer

        # Built on a copy that writes nowhere: Trainer creates its output_dir, and with push_to_hub its Hub repo.
        args = copy.copy(training_args)
        args.output_dir, args.push_to_hub = str(scratch), False
        # eval_dataset: Trainer refuses eval_strategy epoch/steps without one; only its presence is checked here.
        trainer = ThermalTrainer(model=model, args=args, train_dataset=train, eval_dataset=train,
                                 data_collator=collate_clips,
                                 sampling=data_args.sampling, mixup_alpha=data_args.mixup_alpha,
                                 cutmix_alpha=data_args.cutmix_alpha)
        trainer.get_train_dataloader()
    except Exception as err:  # noqa: BLE001
        checklist.add(FAIL, "trainer", _short(err))
        return
    device = training_args.device
    dtype = torch.bfloat16 if training_args.bf16 else torch.float16 if training_args.fp16 else None
    try:
        model.to(device).train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = trainer.compute_loss(model, {k: v.to(device) for k, v in batch.items()
                                                if k in ("pixel_values", "labels")})
        loss.float().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        step_s = time.perf_counter() - started
    except Exception as err:  # noqa: BLE001
        hint = " (out of memory: lower per_device_train_batch_size or image_size)" if "out of memory" in str(err) else ""
        checklist.add(FAIL, "forward/backward", f"on {device}: {_short(err)}{hint}")
        return
    if not torch.isfinite(loss):
        checklist.add(FAIL, "forward/backward", f"loss is {loss.item()} on the first batch")
        return
    memory = ""
    if device.type == "cuda":
        memory = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    checklist.add(OK, "forward/backward", f"loss {loss.item():.3f} on {device} in {step_s:.2f} s{memory}")


def check_output(checklist: Checklist, training_args, model_source: str | None = None) -> None:
    out = Path(training_args.output_dir).expanduser()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".thermal_hf_doctor_"):
            pass
    except OSError as err:
        checklist.add(FAIL, "output folder", f"{out} is not writable ({err.strerror or err})")
        return
    from .errors import RecipeError
    from .training.output_dir import check_output_dir, resolve_resume

    try:  # what `train` decides about this folder, before it converts anything
        resume = resolve_resume(training_args) if training_args.do_train else None
        earlier = check_output_dir(training_args, resume, model_source)
    except RecipeError as err:
        checklist.add(FAIL, "output folder", str(err))
        return
    if resume is not None:
        checklist.add(OK, "output folder", f"{out}: training resumes from {resume}")
    elif earlier:
        shown = f"{', '.join(earlier[:6])}{' ...' if len(earlier) > 6 else ''}"
        checklist.add(WARN, "output folder", f"{out}: training first removes the earlier run's {shown}")
    else:
        checklist.add(OK, "output folder", f"{out} writable")


def run_checks(argv: list[str]) -> Checklist:
    checklist = Checklist()
    from .parser import parse_recipe

    try:
        parsed = parse_recipe(argv, prog="thermal-hf doctor RECIPE.yaml")
    except SystemExit:
        raise
    except ValueError as err:
        checklist.add(FAIL, "recipe", _short(err))
        return checklist
    model_args, data_args, training_args = parsed.as_tuple()
    checklist.add(OK, "recipe", f"{parsed.recipe_path or '(command line only)'}: {len(parsed.recipe)} keys set")

    check_environment(checklist, training_args, model_args)
    dataset = check_data(checklist, data_args, training_args)
    with tempfile.TemporaryDirectory(prefix="thermal_hf_doctor_") as tmp:
        label_names = list(dataset[data_args.train_split].features["label"].names) if dataset is not None else None
        if label_names is None:
            from .data.categories import DEFAULT_CATEGORY_NAMES

            label_names = list(DEFAULT_CATEGORY_NAMES)
        source = check_pretrained(checklist, model_args, data_args, training_args, label_names, Path(tmp))
        if dataset is None or source is False:
            checklist.add(SKIP, "model", "needs the data and the checkpoint above")
        else:
            check_model(checklist, model_args, data_args, training_args, dataset, source, Path(tmp))
    check_output(checklist, training_args, model_args.model_name_or_path)
    return checklist


def main(argv: list[str] | None = None) -> int:
    """Print the checklist and the verdict; 0 ready, 1 a check failed, 2 the recipe or command line is refused."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("usage: thermal-hf doctor RECIPE.yaml [--key value ...]   (any recipe key can be overridden)")
        return 0 if argv else 2
    try:
        checklist = run_checks(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001  (a doctor that crashes must still say so plainly)
        traceback.print_exc()
        print("\nNOT READY: the doctor itself failed (traceback above).")
        return 1
    print()
    print(checklist.verdict())
    if any(name == "recipe" for _, name, _ in checklist.failures):
        return 2  # what `train` exits with for the same recipe
    return 1 if checklist.failures else 0


if __name__ == "__main__":
    sys.exit(main())
