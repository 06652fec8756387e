"""Latency of `pipeline("video-classification")` against the raw model forward on the same clip.

    .venv/bin/python bench/bench_pipeline.py [--repeats 20] [--device cpu|cuda] [--real-data PATH] [--models tiny r50]

For each model (random weights; no download) it times, at batch size 1, on the same raw Celsius clip:
- ``forward``: ``model(pixel_values)`` on an already preprocessed tensor (the floor);
- ``processor``: ``ThermalVideoProcessor`` alone (invalid-pixel repair, length, normalisation);
- ``pipeline``: ``pipeline("video-classification", ...)(clip)`` end to end (preprocess + forward + softmax/top-k);
and prints the medians and the pipeline overhead as a ratio (pipeline / forward). The old MMAction2
integration's deployment bar was under 100 ms a clip.

On a CPU each model is timed twice: as is, and with ``torch.set_flush_denormal(True)``. Random-weight SlowFast
activations can decay into denormal floats, which x86 CPUs process 10-50x slower; which clip/weights hit them
varies, so the "off" numbers of a random model swing between runs. Flushing is a process-wide setting for the
application to choose (it changes results only below ~1e-38).

Models: ``tiny`` (R18, 16 frames, 32 x 48, the test model) and ``r50`` (R50, 64 frames at the sensor's native
40 x 60: no upsampling). ``r50-256`` (R50, 64 frames upsampled to 256 x 384, the seed recipe) is available but
slow on a CPU. With ``--real-data`` the clip is a real 64-frame window (invalid pixels included) from the first
recording; otherwise a synthetic clip with a dead frame and dead rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = {
    "tiny": dict(model_depth=18, num_frames=16, image_size=(32, 48)),
    "r50": dict(model_depth=50, num_frames=64, image_size=(40, 60)),
    "r50-256": dict(model_depth=50, num_frames=64, image_size=(256, 384)),
}


def _clip(num_frames: int, real_data: Path | None) -> np.ndarray:
    if real_data is not None:
        import h5py

        path = sorted((real_data / "frames").glob("*.h5"))[0]
        with h5py.File(path) as f:
            frames = np.asarray(f["frames"][:num_frames], dtype=np.float32)
        return frames
    rng = np.random.default_rng(0)
    clip = rng.normal(17.0, 0.5, (num_frames, 40, 60)).astype(np.float32)
    clip[:, 12:28, 25:35] = 33.0
    clip[num_frames // 3] = -273.2
    clip[num_frames // 2, :6] = -273.2
    return clip


def _interleaved_median_ms(fns: dict, repeats: int, sync) -> dict[str, float]:
    """Median ms of each function, timed in turn within every repeat so a busy machine slows all alike."""
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def bench(name: str, device: str, repeats: int, real_data: Path | None, flush_denormal: bool) -> dict:
    from transformers import pipeline

    import thermal_hf  # noqa: F401
    from thermal_hf.data.categories import DEFAULT_CATEGORY_NAMES
    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastConfig,
        ThermalSlowFastForVideoClassification,
        ThermalVideoProcessor,
    )

    names = list(DEFAULT_CATEGORY_NAMES)
    torch.manual_seed(0)
    config = ThermalSlowFastConfig(**MODELS[name], num_labels=len(names), id2label=dict(enumerate(names)),
                                   label2id={n: i for i, n in enumerate(names)})
    model = ThermalSlowFastForVideoClassification(config).eval().to(device)
    processor = ThermalVideoProcessor(num_frames=config.num_frames)
    clip = _clip(config.num_frames, real_data)
    pixel_values = processor(clip, return_tensors="pt")["pixel_values"].to(device)
    clf = pipeline("video-classification", model=model, video_processor=processor, device=torch.device(device))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def forward():
        with torch.inference_mode():
            model(pixel_values=pixel_values)

    torch.set_flush_denormal(flush_denormal)
    medians = _interleaved_median_ms(
        {"forward": forward, "processor": lambda: processor(clip, return_tensors="pt"), "pipeline": lambda: clf(clip)},
        repeats, sync,
    )
    size = config.image_size
    torch.set_flush_denormal(False)
    return {"model": f"{name} (R{config.model_depth}, {config.num_frames} x {size[0]} x {size[1]})",
            "ftz": "on" if flush_denormal else "off", **medians}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--real-data", type=Path, default=None, help="real dataset root (a real clip is used)")
    p.add_argument("--models", nargs="+", default=["tiny", "r50"], choices=sorted(MODELS))
    args = p.parse_args(argv)
    if args.real_data is not None and not any((args.real_data / "frames").glob("*.h5")):
        p.error(f"--real-data {args.real_data}: no recording in {args.real_data / 'frames'} (expected a raw dataset)")
    rows = [bench(name, args.device, args.repeats, args.real_data, flush) for name in args.models
            for flush in ((False, True) if args.device == "cpu" else (False,))]
    print(f"device: {args.device} ({torch.get_num_threads()} torch threads), batch 1, median of {args.repeats}, "
          f"{'real' if args.real_data else 'synthetic'} clip, load average {os.getloadavg()[0]:.1f}\n")
    print("| model | flush denormals | raw forward (ms) | processor (ms) | pipeline (ms) | overhead (pipeline / forward) "
          "| < 100 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['ftz']} | {r['forward']:.1f} | {r['processor']:.1f} | {r['pipeline']:.1f} | "
              f"{r['pipeline'] / r['forward']:.2f}x | {'yes' if r['pipeline'] < 100 else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
