"""Experiment behind one ablation row of BENCHMARKS.md: the person's neighbourhood as input instead of the room.

    .venv/bin/python bench/exp_person_crop.py recipes/thermal_native.yaml --crop annotation --crop_size 24 \
        --dataset ../shared/datasets/thermal_action_v1 --protocol grouped --seeds 3 --output OUT -- --image_size 48 48

Runs `thermal-hf benchmark` (every argument after `--crop` / `--crop_size` is the benchmark's) with one change
patched into the training and evaluation datasets: each window is cut to a `crop_size` x `crop_size` square (the
same square in every frame, edge-padded where it leaves the frame) centred on

- `annotation`: the keyframe's annotated box (the union of the people for keyframe targets). An oracle: a
  deployed sensor has no annotated box, so this asks whether the person's box would help at all;
- `blob`: the largest blob warmer than its frame's median by 1.5 C in the window's middle frame (the keyframe),
  which a deployed sensor can compute; the window's centre when no pixel is that warm.

The point: the network's features separate the training recordings rather than the postures (BENCHMARKS.md, "Is
there any signal for the rare classes?"); around the person, the room (its bed, its furniture, where people
usually are) is mostly cut away. Not a recipe key: see BENCHMARKS.md for what it measured.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from scipy import ndimage

from thermal_hf.benchmark import main
from thermal_hf.data.transforms import augment, has_invalid
from thermal_hf.training.data import ThermalClipDataset

BLOB_THRESHOLD = 1.5  # C above the frame's median: the probes' person threshold (exp_rare_class_probes.py)


def blob_centre(frame: np.ndarray) -> tuple[float, float] | None:
    """(row, column) of the largest connected blob warmer than the frame's median by BLOB_THRESHOLD, or None."""
    mask = frame - np.median(frame) > BLOB_THRESHOLD
    labelled, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = ndimage.sum(mask, labelled, range(1, count + 1))
    return ndimage.center_of_mass(mask, labelled, int(np.argmax(sizes)) + 1)


def crop_square(frames: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    """`(T, size, size)` cut of `(T, H, W)` centred on (row, column); edge-padded outside the frame."""
    _, height, width = frames.shape
    top = int(round(centre[0] - size / 2))
    left = int(round(centre[1] - size / 2))
    padded = np.pad(frames, ((0, 0), (size, size), (size, size)), mode="edge")
    return padded[:, top + size: top + 2 * size, left + size: left + 2 * size]


def patch_dataset(mode: str, size: int) -> None:
    def getitem(self: ThermalClipDataset, index: int) -> dict:
        index = int(index)
        frames = self._reader.frames(index)
        if has_invalid(frames, self.processor.invalid_floor):
            frames = self.processor.clean(frames)
        frames = np.asarray(self.processor.fit_length(frames), dtype=np.float32)
        _, height, width = frames.shape
        if mode == "annotation":
            cx, cy = self._reader.columns["bbox"][index][:2]
            centre = (cy * height, cx * width)
        else:
            centre = blob_centre(frames[len(frames) // 2]) or (height / 2, width / 2)
        frames = crop_square(frames, centre, size)
        if self.augmentation is not None:
            frames, _ = augment(frames, None, self.augmentation, self._generator())
        pixel_values = np.ascontiguousarray(self.processor.normalize(frames), dtype=np.float32)
        return {"pixel_values": torch.from_numpy(pixel_values), "labels": int(self._labels[index])}

    ThermalClipDataset.__getitem__ = getitem


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crop", choices=("annotation", "blob"), required=True)
    parser.add_argument("--crop_size", type=int, default=24, help="side of the square, in sensor pixels")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # the benchmark's overrides pass through untouched
    ours, rest = parser.parse_known_args(argv[:cut])
    rest += argv[cut:]
    patch_dataset(ours.crop, ours.crop_size)
    sys.exit(main(rest))
