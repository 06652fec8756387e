"""Conversion time and read throughput: converted dataset (numpy format) vs raw h5py windows of the gzip files.

    .venv/bin/python bench/bench_data.py [--real-data PATH] [--num_frames 64] [--reads 400]

Without --real-data it reads ../shared/datasets/thermal_action_v1 beside the repository, or, when that is absent,
generates a synthetic dataset first (thermal_hf.data.synthetic); a --real-data folder that is not a raw dataset
is an error. Every row reads the same windows (same seed); "+ clean/normalize" rows also run
`thermal_hf.data.transforms.repair_invalid` + `normalize`, the per-sample CPU work of the training transform.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thermal_hf.data.convert import ClipReader, convert_dataset, load_converted  # noqa: E402

try:
    from thermal_hf.data.transforms import normalize, repair_invalid
except ImportError:  # the transforms module is optional for this bench
    repair_invalid = normalize = None


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def _timed(fn, n: int) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _clean(frames: np.ndarray) -> np.ndarray:
    return normalize(repair_invalid(frames))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real-data", type=Path, default=None,
                   help="raw dataset folder (default: ../shared/datasets/thermal_action_v1 if present, else synthetic)")
    p.add_argument("--num_frames", type=int, default=64)
    p.add_argument("--reads", type=int, default=400, help="samples read per random-access row")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.real_data is not None and not (args.real_data / "annotations").is_dir():
        p.error(f"--real-data {args.real_data}: not a raw dataset folder (no annotations/ folder)")

    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        root = args.real_data or REPO.parent / "shared" / "datasets" / "thermal_action_v1"
        if not (root / "annotations").is_dir():
            from thermal_hf.data.synthetic import generate_dataset

            root = generate_dataset(work / "raw", recordings=8, seed=0, frames_per_recording=480)
            print(f"(real data not found; using a synthetic dataset at {root})")

        rows: list[tuple[str, str, str]] = []
        for target in ("person", "keyframe"):
            out = work / f"conv_{target}"
            t = time.perf_counter()
            report = convert_dataset(root, out, target=target, num_frames=args.num_frames, show_progress=False)
            secs = time.perf_counter() - t
            n = sum(report.num_samples.values())
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
            rows.append((f"convert, target={target} ({n} samples, {size:.0f} MiB)", f"{secs:.2f} s",
                         _rate(n, secs)))

        ds = load_converted(work / "conv_person")["train"]
        npds = ds.with_format("numpy")
        rng = np.random.default_rng(args.seed)
        idx = rng.integers(0, len(ds), size=args.reads)
        recs = np.asarray(list(ds["recording"]))
        keys = np.asarray(list(ds["keyframe_index"]))
        half = args.num_frames // 2

        # raw h5py: files opened once, one gzip window slice per sample (what training from HDF5 would do)
        files = {r: h5py.File(root / "frames" / f"{r}.h5", "r") for r in sorted(set(recs))}

        def raw_read(clean: bool):
            for i in idx:
                f = files[recs[i]]["frames"]
                start = max(0, int(keys[i]) - half)
                w = f[start:start + args.num_frames]
                if clean:
                    _clean(w)

        def np_random(clean: bool):
            for i in idx:
                w = npds[int(i)]["frames"]
                if clean:
                    _clean(w)

        reader = ClipReader(ds)

        def reader_random(clean: bool):
            for i in idx:
                w = reader.frames(int(i))  # a view: nothing is read until it is used
                if clean:
                    _clean(w)
                else:
                    np.array(w)  # copied out, so that the frames are really read (from the page cache)

        def np_batched(clean: bool):
            bs = args.batch_size
            for b in range(0, len(idx), bs):
                batch = npds[sorted(int(i) for i in idx[b:b + bs])]["frames"]
                if clean:
                    for w in batch:
                        _clean(w)

        def np_contiguous(clean: bool):
            bs = args.batch_size
            for b in range(0, len(ds), bs):
                batch = npds[b:b + bs]["frames"]
                if clean:
                    for w in batch:
                        _clean(w)

        def lists_random(n: int):
            for i in idx[:n]:
                np.asarray(ds[int(i)]["frames"], dtype=np.float32)

        variants = [(False, "")] + ([(True, " + clean/normalize")] if repair_invalid is not None else [])
        for clean, suffix in variants:
            raw_read(clean)  # warm the page cache for both sides
            rows.append((f"raw h5py gzip window slice, random{suffix}", "", _rate(len(idx), _timed(
                lambda c=clean: raw_read(c), len(idx)))))
            rows.append((f"converted numpy format, random rows{suffix}", "", _rate(len(idx), _timed(
                lambda c=clean: np_random(c), len(idx)))))
            rows.append((f"converted, ClipReader (zero-copy Arrow view{', copied out' if not clean else ''}), random rows{suffix}", "", _rate(len(idx), _timed(
                lambda c=clean: reader_random(c), len(idx)))))
            rows.append((f"converted numpy format, random batches of {args.batch_size}{suffix}", "",
                         _rate(len(idx), _timed(lambda c=clean: np_batched(c), len(idx)))))
            rows.append((f"converted numpy format, sequential batches of {args.batch_size}{suffix}", "",
                         _rate(len(ds), _timed(lambda c=clean: np_contiguous(c), len(ds)))))
        n_lists = min(60, len(idx))
        rows.append(("converted, default format (Python lists), random rows", "", _rate(n_lists, _timed(
            lambda: lists_random(n_lists), n_lists))))
        for f in files.values():
            f.close()

        print(f"\ndata: {args.real_data if root == args.real_data else 'synthetic'}; num_frames={args.num_frames}; "
              f"window {args.num_frames}x{ds.features['frames'].shape[1]}x{ds.features['frames'].shape[2]} float32; "
              f"{len(idx)} random reads (seed {args.seed})\n")
        print("| measurement | time | samples/s |")
        print("|---|---:|---:|")
        for name, t, rate in rows:
            print(f"| {name} | {t} | {rate} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
