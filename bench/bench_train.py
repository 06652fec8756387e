"""Training throughput on this machine (clips per second), with data loading measured on its own.

    .venv/bin/python bench/bench_train.py [--real-data PATH] [--steps 6] [--configs tiny native]

For each configuration:
  - data: `ThermalClipDataset` (clean -> fit_length -> augment -> normalize) + `collate_clips`, main process,
    with the training augmentations on: clips/s and seconds per batch;
  - compute: forward + backward + AdamW step on batches already in memory: clips/s;
  - trainer: `ThermalTrainer.train` for `--steps` optimizer steps (dataloader_num_workers 0, so loading and
    compute add up): clips/s, and the share of a step spent loading data (data time per batch / trainer time
    per batch).

Configurations: tiny (depth 18, 16 frames, 32 x 48: the tests' model) and native (SlowFast R50, 64 frames at
the sensor's 40 x 60, i.e. no upsampling); on a GPU machine add ``--configs r50_256x384`` (the old integration's
input) and ``--device cuda --bf16``.
Data: ``--real-data`` (a raw folder, converted per config into a temporary cache, or a converted folder whose
windows every config's ``num_frames`` matches: another length is refused), else a synthetic dataset generated
into a temporary folder.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = {
    "tiny": dict(model_depth=18, num_frames=16, image_size=(32, 48), batch_size=4),
    "native": dict(model_depth=50, num_frames=64, image_size=(40, 60), batch_size=4),
    "r50_256x384": dict(model_depth=50, num_frames=64, image_size=(256, 384), batch_size=4),
}


def dataset_for(num_frames: int, real: str | None, tmp: Path):
    from thermal_hf.data.convert import ensure_converted, load_converted
    from thermal_hf.data.synthetic import generate_dataset

    if real is None:
        raw = tmp / "synthetic"
        if not raw.exists():
            generate_dataset(raw, recordings=4, seed=0, frames_per_recording=240)
        source = raw
    else:
        source = Path(real)
    return load_converted(ensure_converted(source, cache_dir=tmp / "cache", num_frames=num_frames))


def bench_data(train_ds, batch_size: int, batches: int = 8) -> float:
    from thermal_hf.training.data import collate_clips

    order = np.random.default_rng(0).permutation(len(train_ds))
    times = []
    for b in range(batches):
        idx = order[(b * batch_size) % len(order):][:batch_size]
        started = time.perf_counter()
        collate_clips([train_ds[int(i)] for i in idx])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_compute(model, batch, steps: int, device, dtype) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.to(device).train()
    pixel_values, labels = batch["pixel_values"].to(device), batch["labels"].to(device)
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators / kernels
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(pixel_values=pixel_values).logits
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def bench_trainer(model, train_ds, processor, batch_size: int, steps: int, tmp: Path, device) -> float:
    from thermal_hf.configs import ThermalTrainingArguments
    from thermal_hf.training.data import collate_clips
    from thermal_hf.training.trainer import ThermalTrainer

    args = ThermalTrainingArguments(
        output_dir=str(tmp / "trainer_out"), max_steps=steps + 1, per_device_train_batch_size=batch_size,
        save_strategy="no", eval_strategy="no", do_eval=False, report_to="none", disable_tqdm=True,
        use_cpu=device.type == "cpu", dataloader_num_workers=0, logging_strategy="no", optim="adamw_torch",
        learning_rate=1e-4, class_weighting="inverse_frequency",
    )
    trainer = ThermalTrainer(model=model, args=args, train_dataset=train_ds, data_collator=collate_clips,
                             processing_class=processor)
    result = trainer.train()
    return result.metrics["train_runtime"] / (steps + 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-data", default=None,
                        help="raw dataset folder (each config converts it with its own window length), or a "
                             "converted folder whose windows every config's num_frames matches (default: synthetic)")
    parser.add_argument("--configs", nargs="+", default=["tiny", "native"], choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args(argv)
    if args.real_data is not None and not Path(args.real_data).is_dir():
        parser.error(f"--real-data {args.real_data}: folder not found")

    import thermal_hf  # noqa: F401
    from thermal_hf.data.transforms import AugmentationConfig
    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastConfig,
        ThermalSlowFastForVideoClassification,
        ThermalVideoProcessor,
    )
    from thermal_hf.training.data import ThermalClipDataset, collate_clips

    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.bf16 else None
    augmentation = AugmentationConfig(horizontal_flip_prob=0.5, temperature_offset=1.0, random_resized_crop_scale=(0.8, 1.0))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp_name:
        tmp = Path(tmp_name)
        for name in args.configs:
            spec = CONFIGS[name]
            dataset = dataset_for(spec["num_frames"], args.real_data, tmp)
            names = dataset["train"].features["label"].names
            processor = ThermalVideoProcessor(num_frames=spec["num_frames"])
            train_ds = ThermalClipDataset(dataset["train"], processor, augmentation, train=True)
            torch.manual_seed(0)
            config = ThermalSlowFastConfig(model_depth=spec["model_depth"], num_frames=spec["num_frames"],
                                           image_size=spec["image_size"], num_labels=len(names),
                                           id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
            model = ThermalSlowFastForVideoClassification(config)
            bs = spec["batch_size"]
            data_s = bench_data(train_ds, bs)
            batch = collate_clips([train_ds[i] for i in range(bs)])
            compute_s = bench_compute(model, batch, args.steps, device, dtype)
            trainer_s = bench_trainer(model, train_ds, processor, bs, args.steps, tmp, device)
            rows.append((name, spec, data_s, compute_s, trainer_s))
            print(f"done {name}", file=sys.stderr, flush=True)

    print(f"\nDevice: {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
          f"data: {args.real_data or 'synthetic'}\n")
    print("| config | model | clip (T x H x W) -> input | batch | data clips/s | compute clips/s | "
          "trainer clips/s | data share of a step |")
    print("|---|---|---|---|---|---|---|---|")
    for name, spec, data_s, compute_s, trainer_s in rows:
        bs = spec["batch_size"]
        h, w = spec["image_size"]
        print(f"| {name} | R{spec['model_depth']} | {spec['num_frames']} x 40 x 60 -> {h} x {w} | {bs} | "
              f"{bs / data_s:.1f} | {bs / compute_s:.2f} | {bs / trainer_s:.2f} | "
              f"{min(1.0, data_s / trainer_s):.1%} |")
    return 0 if all(math.isfinite(r[4]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
