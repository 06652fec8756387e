"""Model size and forward latency of ThermalSlowFastForVideoClassification.

Prints markdown tables:
- parameter counts of the R18 / R50 / R101 backbones (14 classes);
- forward latency of R50 (batch 1, `torch.no_grad`, eval mode) for the users' input (64 x 256 x 384),
  a native 40 x 60 clip resized on the device to 256 x 384, and a native clip resized to 128 x 192.
  On CPU (always measured) in float32; on CUDA (when available) in bf16 autocast, plus clips per second
  of a full training step (forward + backward + AdamW) at batch `--train-batch`;
- the floating-point operations of one clip through each shipped recipe's model, built as train.py builds it
  (torch.utils.flop_counter: 2 per multiply-add), forward and forward + backward: a GPU's training clips/s times
  the latter is the rate its kernels sustain, whatever bounds them.

Usage: .venv/bin/python bench/bench_model.py [--repeats 3] [--threads N] [--skip-gpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from thermal_hf import ThermalSlowFastConfig, ThermalSlowFastForVideoClassification

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("slowfast.yaml", "thermal_native.yaml")

# (label, image_size the backbone runs at, (H, W) of the clip given to forward)
CASES = [
    ("64 x 256 x 384 (users' input)", (256, 384), (256, 384)),
    ("64 x 40 x 60 -> 256 x 384 on device", (256, 384), (40, 60)),
    ("64 x 40 x 60 -> 128 x 192 on device", (128, 192), (40, 60)),
]


def parameter_counts(num_labels: int = 14) -> list[tuple[int, int, int]]:
    rows = []
    for depth in (18, 50, 101):
        with torch.device("meta"):  # shapes only: no memory, no init
            model = ThermalSlowFastForVideoClassification(ThermalSlowFastConfig(model_depth=depth, num_labels=num_labels))
        total = sum(p.numel() for p in model.parameters())
        head = sum(p.numel() for _, p in model.head_parameters())
        rows.append((depth, total, head))
    return rows


def recipe_flops(recipe: Path, num_labels: int = 14) -> tuple[str, float, float]:
    """(input, forward FLOPs, forward + backward FLOPs) of one clip through the recipe's model, in training mode."""
    from torch.utils.flop_counter import FlopCounterMode

    from thermal_hf.parser import parse_recipe
    from thermal_hf.train import build_model_and_processor

    with tempfile.TemporaryDirectory() as out:
        model_args, data_args, training_args = parse_recipe([str(recipe), "--output_dir", out]).as_tuple()
        model, _ = build_model_and_processor(model_args, data_args, training_args, [f"c{i}" for i in range(num_labels)])
    clip = torch.rand(1, data_args.num_frames, 40, 60)  # a raw sensor clip: the model resizes it on the device
    model.train()
    with FlopCounterMode(display=False) as forward:
        model(pixel_values=clip)
    with FlopCounterMode(display=False) as both:
        model(pixel_values=clip, labels=torch.tensor([0])).loss.backward()
    size = model.config.image_size
    return f"{data_args.num_frames} x {size[0]} x {size[1]}", forward.get_total_flops(), both.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_latency(image_size, clip_hw, device, repeats, bf16=False) -> tuple[float, float, float]:
    """(median wall seconds, min wall seconds, median process CPU seconds) of one forward."""
    torch.manual_seed(0)
    model = ThermalSlowFastForVideoClassification(
        ThermalSlowFastConfig(model_depth=50, num_labels=14, image_size=image_size)
    ).eval().to(device)
    clip = torch.rand(1, 64, *clip_hw, device=device)
    times, cpu_times = [], []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        model(clip)  # warm-up (allocator, cuDNN autotune)
        for _ in range(repeats):
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            model(clip)
            _sync(device)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return statistics.median(times), min(times), statistics.median(cpu_times)


def train_throughput(image_size, clip_hw, device, batch, steps) -> float:
    torch.manual_seed(0)
    model = ThermalSlowFastForVideoClassification(
        ThermalSlowFastConfig(model_depth=50, num_labels=14, image_size=image_size)
    ).train().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    clip = torch.rand(batch, 64, *clip_hw, device=device)
    labels = torch.randint(0, 14, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(clip, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per case (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-gpu", action="store_true", help="CPU only even when CUDA is available")
    parser.add_argument("--train-batch", type=int, default=8, help="batch of the GPU training-step measurement")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print("## Parameters (14 classes)\n")
    print("| backbone | parameters | head parameters |")
    print("|---|---:|---:|")
    for depth, total, head in parameter_counts():
        print(f"| R{depth} | {total / 1e6:.2f} M | {head:,} |")

    print("\n## Operations of one clip (torch.utils.flop_counter, training mode)\n")
    print("| recipe | backbone input T x H x W | forward GFLOP | forward + backward GFLOP |")
    print("|---|---|---:|---:|")
    for name in RECIPES:
        size, forward, both = recipe_flops(REPO / "recipes" / name)
        print(f"| {name} | {size} | {forward / 1e9:.2f} | {both / 1e9:.2f} |")

    cpu = torch.device("cpu")
    print(f"\n## R50 forward latency, CPU float32, batch 1, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} (min)\n")
    # CPU time (all threads) is less sensitive than wall time to other processes sharing the machine.
    print("| clip given to forward | backbone runs at | wall latency (min) | CPU time |")
    print("|---|---|---:|---:|")
    for label, image_size, clip_hw in CASES:
        median, best, cpu_time = forward_latency(image_size, clip_hw, cpu, args.repeats)
        print(f"| {label} | {image_size[0]} x {image_size[1]} | {median * 1000:.0f} ms ({best * 1000:.0f}) "
              f"| {cpu_time * 1000:.0f} ms |")

    if torch.cuda.is_available() and not args.skip_gpu:
        gpu = torch.device("cuda")
        print(f"\n## R50 on {torch.cuda.get_device_name(gpu)}, bf16 autocast\n")
        print(f"| clip given to forward | forward latency (batch 1) | training step clips/s (batch {args.train_batch}) |")
        print("|---|---:|---:|")
        for label, image_size, clip_hw in CASES:
            median, _, _ = forward_latency(image_size, clip_hw, gpu, max(args.repeats, 10), bf16=True)
            clips = train_throughput(image_size, clip_hw, gpu, args.train_batch, steps=5)
            print(f"| {label} | {median * 1000:.1f} ms | {clips:.1f} |")
    else:
        print("\nNo GPU measurement: " + ("--skip-gpu given." if args.skip_gpu else "no CUDA device in this run."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
