"""Throughput, latency and memory of whole recipes, built exactly as `thermal_hf.train.run` builds them.

    .venv/bin/python bench/bench_recipe.py [RECIPE ...] [--real-data PATH] [--device cpu|cuda] [--bf16]
        [--channels-last] [--compile] [--cudnn-benchmark] [--steps 6] [--batch-size B] [--json OUT]
        [--data-workers N] [-- --recipe_key value ...]
    # GPU: ... recipes/thermal_native.yaml recipes/slowfast.yaml --device cuda [--bf16] --real-data PATH

Each recipe (default recipes/thermal_native.yaml) goes through `parse_recipe([recipe, "--dataset", ..., "--output_dir",
tmp, overrides])` and train.py's own steps (`load_data`: conversion, eval_recordings, max_train_samples;
`build_model_and_processor`: processor, seeded model; ThermalClipDataset with the recipe's augmentations, collate_clips,
ThermalTrainer). Overridden: max_steps, report_to none, save_strategy no, what a train-only run needs
(eval_strategy no, load_best_model_at_end false, callbacks none), dataloader_drop_last (every timed step has the
warm-up's batch shape), disable_tqdm, use_cpu (from --device), precision
(fp32, or bf16 with --bf16, so rows compare like with like: slowfast.yaml's `mixed_precision: auto` is not used)
and, with --batch-size, per_device_train_batch_size. Workers, optimizer, sampling, mixup stay the recipe's, unless
given after `--` (e.g. `-- --dataloader_num_workers 8`), where any recipe key can be overridden for every recipe.

Measured per recipe:
  1. data: ThermalClipDataset (clean, fit_length, augment, normalize) + collate_clips in the main process over
     --data-batches random batches after a warm-up batch: windows/s; with --data-workers N also through a
     torch DataLoader with N worker processes (whole shuffled epochs after a warm-up epoch): "loader windows/s";
  2. train: ThermalTrainer.train, --warmup-steps then --steps timed optimizer steps: clips/s. "data share" = main-
     process data time of a step / trainer time of a step (train clips/s / data windows/s; > 100%: the main process
     alone cannot feed the trainer, workers must). "loader wait" = share of the timed steps the loop really waited
     in get_batch_samples for a batch (workers included). "epoch s" is DERIVED (train split size / clips/s);
  3. inference: (a) pipeline("video-classification", model=<fresh model + processor, save_pretrained>) on one
     64 x 40 x 60 clip (first frames of the recording below): median ms of --repeats after 2 warm-up calls;
     (b) thermal_hf.predict.predict_recording (stride 8, batch 8) over one whole HDF5 recording (the first of
     <real data>/frames, else a synthetic one): windows/s of a second pass, after an untimed one (warm-up);
  4. memory: peak RSS (ru_maxrss, this process; dataloader workers not included) after each phase; on CUDA
     max_memory_allocated for train and inference (reset between), and mean GPU utilisation over the timed
     steps (pynvml or nvidia-smi when present).

Each recipe runs in its own process: peak RSS is per recipe, and the recipe's `env:` block (OMP_NUM_THREADS...) is
set before torch loads, as parser.apply_env documents. Without --real-data a small synthetic dataset is generated
(epoch times then mean little); a raw real folder is converted once into the recipe's cache_dir. On a CPU, random
weights can hit denormal floats and make inference swing between runs (bench_pipeline.py): --flush-denormal.
GPU options: --bf16 (TrainingArguments bf16, autocast for inference), --channels-last (channels_last_3d weights),
--compile (torch_compile=True for training, Module.compile() for inference; raise --warmup-steps so compilation
and recompiles stay out of the timed steps), --cudnn-benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# No torch import at module level: a recipe's `env:` block must be applied before torch reads it.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class GpuUtilSampler(threading.Thread):
    """Samples GPU utilisation (%) every `interval` s with pynvml, else nvidia-smi; does nothing when neither is there."""

    def __init__(self, index: int, interval: float = 0.25):
        super().__init__(daemon=True)
        # `_done`, not `_stop`: Thread has a private _stop() method of its own.
        self.interval, self.samples, self._done = interval, [], threading.Event()
        self._read = None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._read = lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except Exception:  # pynvml missing or no NVML: fall back to the CLI
            if shutil.which("nvidia-smi"):
                cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", str(index)]
                self._read = lambda: float(subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.split()[0])

    def run(self):
        while self._read is not None and not self._done.is_set():
            try:
                self.samples.append((time.perf_counter(), float(self._read())))
            except Exception:
                return
            self._done.wait(self.interval)

    def mean_between(self, start: float, end: float) -> float | None:
        self._done.set()
        values = [u for t, u in self.samples if start <= t <= end]
        return statistics.mean(values) if values else None


def _recipe_overrides(args, dataset: Path, output_dir: Path, cache_dir: Path | None) -> list[str]:
    over = ["--dataset", str(dataset), "--output_dir", str(output_dir),
            "--max_steps", str(args.warmup_steps + args.steps), "--report_to", "none", "--save_strategy", "no",
            # A train-only run: no evaluation, so nothing that depends on one (best model, early stopping).
            "--eval_strategy", "no", "--do_eval", "false", "--load_best_model_at_end", "false", "--callbacks", "none",
            "--push_to_hub", "false", "--disable_tqdm", "true", "--use_cpu", str(args.device == "cpu").lower(),
            # Every timed step sees the batch shape the warm-up steps saw: an epoch's short last batch is a new shape,
            # and with --cudnn-benchmark (or --compile) a new shape is re-tuned (re-compiled) inside the timed steps.
            "--dataloader_drop_last", "true"]
    over += ["--mixed_precision", "bf16"] if args.bf16 else ["--mixed_precision", "no", "--bf16", "false", "--fp16", "false"]
    if cache_dir is not None:
        over += ["--cache_dir", str(cache_dir)]
    if args.compile:
        over += ["--torch_compile", "true"]
    if args.batch_size:
        over += ["--per_device_train_batch_size", str(args.batch_size)]
    return over + list(args.overrides)  # last: the command line after `--` wins


def measure(recipe: str, args) -> dict:
    """Everything for one recipe (runs in a child process)."""
    import yaml

    # The recipe's `env:` (e.g. OMP_NUM_THREADS), set before torch loads, a variable already set in the shell
    # winning, as parser.apply_env documents. Read here because importing thermal_hf (parser included) loads torch.
    env = (yaml.safe_load(Path(recipe).read_text()) or {}).get("env") or {}
    for name, value in env.items():
        os.environ.setdefault(str(name), "" if value is None else str(value))
    import numpy as np
    import torch
    from transformers import TrainerCallback, pipeline

    import thermal_hf  # noqa: F401  (registers the Auto classes and the pipeline)
    from thermal_hf.parser import parse_recipe
    from thermal_hf.predict import load_model_and_processor, predict_recording
    from thermal_hf.train import build_model_and_processor, load_data
    from thermal_hf.training.data import ThermalClipDataset, collate_clips
    from thermal_hf.training.trainer import ThermalTrainer

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.set_flush_denormal(args.flush_denormal)
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    tmp = Path(tempfile.mkdtemp(prefix="bench_recipe_"))
    try:
        # ---- data (same steps and order as train.run) ----
        if args.real_data:
            dataset_root, cache_dir = Path(args.real_data), None  # the recipe's cache: a real folder converts once
        else:
            from thermal_hf.data.synthetic import generate_dataset

            dataset_root, cache_dir = tmp / "synthetic", tmp / "cache"
            generate_dataset(dataset_root, recordings=4, seed=0, frames_per_recording=240)
        parsed = parse_recipe([recipe, *_recipe_overrides(args, dataset_root, tmp / "out", cache_dir)])
        model_args, data_args, training_args = parsed.as_tuple()
        data = load_data(data_args, training_args)
        train_split = data.train
        model, processor = build_model_and_processor(model_args, data_args, training_args, data.label_names)
        seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
        train_ds = ThermalClipDataset(train_split, processor, data_args.augmentation_config(), train=True, seed=seed)
        # Saved now, before channels_last (safetensors wants contiguous weights) and before training.
        saved = tmp / "model"
        model.save_pretrained(saved)
        processor.save_pretrained(saved)

        # ---- 1. data path, main process ----
        bs = training_args.per_device_train_batch_size
        order = np.random.default_rng(0).permutation(len(train_ds))
        batches = [order[(b * bs) % len(order):][:bs] for b in range(args.data_batches + 1)]
        collate_clips([train_ds[int(i)] for i in batches[0]])  # warm-up (page cache, first allocations)
        started = time.perf_counter()
        windows = sum(len(collate_clips([train_ds[int(i)] for i in idx])["labels"]) for idx in batches[1:])
        data_wps = windows / (time.perf_counter() - started)
        loader_wps = None
        if args.data_workers:  # the same path through a DataLoader with worker processes (how training feeds a GPU)
            loader = torch.utils.data.DataLoader(train_ds, batch_size=bs, shuffle=True, num_workers=args.data_workers,
                                                 collate_fn=collate_clips, persistent_workers=True)
            for _ in loader:  # warm-up epoch: workers started, page cache filled
                pass
            started, windows = time.perf_counter(), 0
            for _ in range(max(1, args.data_batches * bs // len(train_ds))):
                windows += sum(len(batch["labels"]) for batch in loader)
            loader_wps = windows / (time.perf_counter() - started)
            del loader
        rss_data = _rss_mib()

        # ---- 2. training ----
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        trainer = ThermalTrainer(model=model, args=training_args, data_collator=collate_clips, train_dataset=train_ds,
                                 processing_class=processor, sampling=data_args.sampling,
                                 mixup_alpha=data_args.mixup_alpha, cutmix_alpha=data_args.cutmix_alpha)
        step_ends: dict[int, float] = {}
        first_timed = args.warmup_steps

        class StepClock(TrainerCallback):
            def on_train_begin(self, _args, state, control, **kwargs):
                step_ends[0] = time.perf_counter()  # the timed window's start when there is no warm-up

            # Synchronise only at the two ends of the timed window, so CPU/GPU overlap between steps is kept.
            def on_step_end(self, _args, state, control, **kwargs):
                if state.global_step in (first_timed, first_timed + args.steps):
                    sync()
                step_ends[state.global_step] = time.perf_counter()

        trainer.add_callback(StepClock())
        waits: list[tuple[float, float]] = []
        fetch = trainer.get_batch_samples

        def timed_fetch(*a, **k):  # instance attribute: the training loop calls self.get_batch_samples
            t = time.perf_counter()
            out = fetch(*a, **k)
            waits.append((t, time.perf_counter() - t))
            return out

        trainer.get_batch_samples = timed_fetch
        sampler = None
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            # nvidia-smi / NVML number GPUs physically; CUDA_VISIBLE_DEVICES renumbers them for torch.
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
            index = torch.cuda.current_device()
            sampler = GpuUtilSampler(int(visible[index]) if index < len(visible) and visible[index].isdigit() else index)
            sampler.start()
        trainer.train()
        t0, t1 = step_ends[first_timed], step_ends[first_timed + args.steps]
        step_s = (t1 - t0) / args.steps
        clips_per_step = bs * training_args.gradient_accumulation_steps * training_args.world_size
        train_cps = clips_per_step / step_s
        wait_s = sum(d for t, d in waits if t0 <= t < t1)
        train_gib = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        gpu_util = sampler.mean_between(t0, t1) if sampler else None
        rss_train = _rss_mib()
        # On stderr at once: a row stopped later (a time cap on a lent GPU) still leaves its training figures.
        print(f"[bench_recipe] {recipe}: train {train_cps:.1f} clips/s (batch {clips_per_step}), loader wait "
              f"{wait_s / (t1 - t0):.0%}, GPU peak {_fmt(train_gib, '.2f')} GiB, GPU util {_fmt(gpu_util, '.0f')} %, "
              f"data {data_wps:.0f} windows/s", file=sys.stderr, flush=True)
        del trainer, model
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

        # ---- 3. inference ----
        frames_dir = dataset_root / "frames"
        recordings = sorted(frames_dir.glob("*.h5")) if frames_dir.is_dir() else []
        if not recordings:  # a converted --real-data folder has no raw recordings: use a synthetic one
            from thermal_hf.data.synthetic import generate_dataset

            recordings = sorted((generate_dataset(tmp / "rec", recordings=2, seed=0) / "frames").glob("*.h5"))
        import h5py

        with h5py.File(recordings[0], "r") as handle:
            clip = np.asarray(handle["frames"][:64], dtype=np.float32)
        autocast = lambda: torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16)  # noqa: E731

        def prepared(m):
            if args.channels_last:
                m = m.to(memory_format=torch.channels_last_3d)
            if args.compile:
                m.compile()  # in place: the pipeline still sees the model class and its config
            return m

        pipeline_ms = pipeline_error = None
        try:  # the stock pipeline needs PyAV (a dependency of thermal-hf): its absence must not lose the rows above
            classifier = pipeline("video-classification", model=str(saved), device=torch.device(args.device))
        except ImportError as err:
            pipeline_error = str(err).strip().splitlines()[0]
            print(f"[bench_recipe] pipeline not measured: {pipeline_error}", file=sys.stderr)
        else:
            classifier.model = prepared(classifier.model)
            latencies = []
            for _ in range(args.repeats + 2):
                sync()
                t = time.perf_counter()
                with autocast():
                    classifier(clip)
                sync()
                latencies.append(1000 * (time.perf_counter() - t))
            pipeline_ms = statistics.median(latencies[2:])
            print(f"[bench_recipe] {recipe}: pipeline {pipeline_ms:.1f} ms a clip", file=sys.stderr, flush=True)
            del classifier

        infer_model, infer_processor = load_model_and_processor(saved, args.device)
        infer_model = prepared(infer_model)
        with autocast():  # warm-up: one untimed pass over the recording, so every batch shape predict uses (the
            # last one is often short) is already tuned by cuDNN benchmark (or compiled) when the timed pass runs;
            # the eleventh session's H100 rows timed that tuning (15 windows = 8 + 7: 9-12 windows/s, 222 on 2 CPUs)
            predict_recording(infer_model, infer_processor, recordings[0], stride=8, batch_size=8, progress=False)
        sync()
        t = time.perf_counter()
        with autocast():
            rows = predict_recording(infer_model, infer_processor, recordings[0], stride=8, batch_size=8, progress=False)
        sync()
        recording_cps = len(rows) / (time.perf_counter() - t)
        config = infer_model.config

        return {
            "recipe": recipe,
            "params_m": sum(p.numel() for p in infer_model.parameters()) / 1e6,
            "input": f"{config.num_frames} x {config.image_size[0]} x {config.image_size[1]}",
            "batch": clips_per_step, "workers": training_args.dataloader_num_workers,
            "precision": "bf16" if training_args.bf16 else ("fp16" if training_args.fp16 else "fp32"),
            "data_windows_per_s": data_wps, "loader_windows_per_s": loader_wps, "loader_workers": args.data_workers,
            "train_clips_per_s": train_cps,
            "data_share": train_cps / data_wps, "loader_wait_share": wait_s / (t1 - t0),
            "train_split_size": len(train_ds), "epoch_s_derived": len(train_ds) / train_cps,
            "pipeline_ms_per_clip": pipeline_ms, "pipeline_error": pipeline_error,
            "recording": recordings[0].name, "recording_windows": len(rows), "recording_clips_per_s": recording_cps,
            "peak_rss_mib": {"data": rss_data, "train": rss_train, "inference": _rss_mib()},
            "gpu_peak_gib": {"train": train_gib,
                             "inference": torch.cuda.max_memory_allocated() / 2**30 if cuda else None},
            "gpu_util_pct": gpu_util,
            "machine": _machine(torch, args.device),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _machine(torch, device: str) -> dict:
    import transformers

    if device == "cuda":
        name = torch.cuda.get_device_name()
    else:
        lines = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        name = lines[0].split(":", 1)[1].strip() if lines else "cpu"
    return {"cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "device": f"{device}: {name}",
            "load_average_1min": round(os.getloadavg()[0], 2)}


def _fmt(value, spec: str, empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def print_table(command: str, options: str, results: list[dict]) -> None:
    machine = next((r["machine"] for r in results if "machine" in r), {})
    print(f"\n$ {command}\n")
    print(f"machine: {machine.get('device', '?')}, {machine.get('cpus_usable', '?')}/{machine.get('cpu_count', '?')} "
          f"CPUs usable, torch {machine.get('torch', '?')}, transformers {machine.get('transformers', '?')}, "
          f"load average {machine.get('load_average_1min', '?')} (at the end of the first recipe); options: {options}\n")
    print("| recipe | params (M) | input T x H x W | batch | precision | workers | torch threads | data windows/s | "
          "train clips/s | data share | loader wait | epoch s (derived) | pipeline ms/clip | recording clips/s | "
          "peak RSS MiB (data/train/infer) | GPU peak GiB (train/infer) | GPU util % |")
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['recipe']} | failed: {r['error']} |" + " |" * 15)
            continue
        rss, gpu = r["peak_rss_mib"], r["gpu_peak_gib"]
        loader = f" ({r['loader_workers']} workers: {r['loader_windows_per_s']:.1f})" if r.get("loader_windows_per_s") else ""
        print(f"| {r['recipe']} | {r['params_m']:.2f} | {r['input']} | {r['batch']} | {r['precision']} | {r['workers']} | "
              f"{r['machine']['torch_threads']} | {r['data_windows_per_s']:.1f}{loader} | {r['train_clips_per_s']:.2f} | "
              f"{r['data_share']:.0%} | {r['loader_wait_share']:.0%} | {r['epoch_s_derived']:.0f} "
              f"({r['train_split_size']} clips) | {_fmt(r['pipeline_ms_per_clip'], '.1f')} | {r['recording_clips_per_s']:.2f} "
              f"({r['recording_windows']} windows) | {rss['data']:.0f} / {rss['train']:.0f} / {rss['inference']:.0f} | "
              f"{_fmt(gpu['train'], '.2f')} / {_fmt(gpu['inference'], '.2f')} | {_fmt(r['gpu_util_pct'], '.0f')} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipes", nargs="*", default=[str(REPO / "recipes" / "thermal_native.yaml")],
                   help="recipe YAML files (default: recipes/thermal_native.yaml; bench/run_all.py runs that)")
    p.add_argument("--real-data", default=None,
                   help="raw dataset folder (each recipe converts it with its own windows), or a converted folder "
                        "whose windows match every recipe's num_frames and frame_rate (default: synthetic)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--bf16", action="store_true", help="bf16 training (TrainingArguments) and autocast inference")
    p.add_argument("--channels-last", action="store_true", help="model.to(memory_format=torch.channels_last_3d)")
    p.add_argument("--compile", action="store_true", help="torch_compile=True / Module.compile() (slow on a CPU)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) (CPU inference)")
    p.add_argument("--steps", type=int, default=6, help="timed optimizer steps")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed optimizer steps before them")
    p.add_argument("--batch-size", type=int, default=None, help="override per_device_train_batch_size")
    p.add_argument("--data-batches", type=int, default=8, help="batches timed in the data measurement")
    p.add_argument("--data-workers", type=int, default=0,
                   help="also time whole epochs of a DataLoader with this many worker processes (0: skip)")
    p.add_argument("--repeats", type=int, default=20, help="pipeline calls timed")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--_result", type=Path, default=None, help=argparse.SUPPRESS)  # child mode: one recipe
    argv = list(sys.argv[1:] if argv is None else argv)
    own, overrides = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = p.parse_args(own)
    args.overrides = overrides
    if args.bf16 and args.device == "cpu":
        p.error("--bf16 is for --device cuda (CPU bf16 autocast is not what these recipes run on a CPU)")
    if args.steps < 1 or args.warmup_steps < 0:
        p.error("--steps must be >= 1 and --warmup-steps >= 0")
    missing = [r for r in args.recipes if not Path(r).is_file()]
    if missing:
        p.error(f"recipe file(s) not found: {', '.join(map(str, missing))}")
    if args.real_data is not None and not Path(args.real_data).is_dir():
        p.error(f"--real-data {args.real_data}: folder not found")

    if args._result is not None:
        from thermal_hf.errors import CheckpointError, RecipeError, ThermalDataError

        try:
            args._result.write_text(json.dumps(measure(args.recipes[0], args)))
        except (RecipeError, ThermalDataError, CheckpointError) as err:  # the parent's row says "failed"
            print(f"error: {args.recipes[0]}: {err}", file=sys.stderr)
            return 2
        return 0

    # One child process per recipe (per-recipe peak RSS, the recipe's env: applied before torch loads).
    passed = [a for a in own if a not in args.recipes]
    if args.json is not None:  # the parent writes the JSON; children get everything else
        i = passed.index("--json") if "--json" in passed else None
        passed = passed[:i] + passed[i + 2:] if i is not None else [a for a in passed if not a.startswith("--json=")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_recipe_results_") as tmp:
        for n, recipe in enumerate(args.recipes):
            out = Path(tmp) / f"{n}.json"
            print(f"[bench_recipe] {recipe} ...", file=sys.stderr, flush=True)
            # Children's stdout (Trainer's log lines) goes to stderr so stdout holds only the table.
            child = [sys.executable, str(Path(__file__).resolve()), recipe, *passed, "--_result", str(out)]
            code = subprocess.run(child + (["--", *overrides] if overrides else []), stdout=sys.stderr).returncode
            results.append(json.loads(out.read_text()) if code == 0 and out.exists()
                           else {"recipe": recipe, "error": f"exit status {code} (see stderr)"})
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    options = ", ".join(f"--{k.replace('_', '-')}" for k in ("bf16", "channels_last", "compile", "cudnn_benchmark",
                                                             "flush_denormal") if getattr(args, k)) or "none"
    options += f"; {args.warmup_steps} warm-up + {args.steps} timed steps; data: {args.real_data or 'synthetic'}"
    if overrides:
        options += f"; recipe overrides: {shlex.join(overrides)}"
    print_table(command, options, results)
    if args.json is not None:
        args.json.write_text(json.dumps({"command": command, "options": options, "results": results}, indent=2) + "\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
