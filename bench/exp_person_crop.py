"""Experiment behind one ablation row of BENCHMARKS.md: the person's neighbourhood as input instead of the room.

    .venv/bin/python bench/exp_person_crop.py recipes/thermal_native.yaml --crop annotation --crop_size 24 \
        --dataset ../shared/datasets/thermal_action_v1 --protocol grouped --seeds 3 --output OUT -- --image_size 48 48

Runs `thermal-hf benchmark` (every argument after `--crop` / `--crop_size` is the benchmark's) with one change
patched into the training and evaluation datasets: each window, once its invalid pixels are repaired, is cut to a
`crop_size` x `crop_size` square (the same square in every frame, edge-padded where it leaves the frame) centred on

- `annotation`: the keyframe's annotated box (the union of the people for keyframe targets). An oracle: a
  deployed sensor has no annotated box, so this asks whether the person's box would help at all;
- `blob`: the largest blob warmer than its frame's median by 1.5 C in the window's middle frame (the keyframe),
  which a deployed sensor can compute; the window's centre when no pixel is that warm.

The point: the network's features separate the training recordings rather than the postures (BENCHMARKS.md, "Is
there any signal for the rare classes?"); around the person, the room (its bed, its furniture, where people
usually are) is mostly cut away. What a deployed sensor can do became the recipe key `person_crop_size` (each
annotated person's own box in training, the largest blob 3 C above the median otherwise: at 1.5 C, as `blob`
here, people lying on a warm bed merge with it); this script keeps the two variants BENCHMARKS.md measured before.

Without `--output` the results go to `outputs/benchmark/<recipe>-crop_<crop><crop_size>/<protocol>`, not to the
plain recipe's folder (the benchmark would reuse its runs: the crop is not part of the recipe). For the same
reason give each crop its own `--output`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from thermal_hf.benchmark import main
from thermal_hf.data.person_crop import crop_square
from thermal_hf.data.transforms import has_invalid
from thermal_hf.training.data import ThermalClipDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exp_common import with_experiment_output, with_whole_room  # noqa: E402
from exp_rare_class_probes import largest_warm_blob  # noqa: E402  the probes' person blob (BLOB_THRESHOLD)


def blob_centre(frame: np.ndarray) -> tuple[float, float] | None:
    """(row, column) of the largest connected blob warmer than the frame's median by 1.5 C, or None."""
    found = largest_warm_blob(frame - np.median(frame))
    return None if found is None else ndimage.center_of_mass(found[0])


def crop_reader(dataset: ThermalClipDataset, mode: str, size: int) -> None:
    """Make ``dataset``'s reader hand out repaired, cut windows; the dataset's own steps (fit_length, augment,
    normalize) then run on the cut as they run on a whole frame."""
    read, processor = dataset._reader.frames, dataset.processor

    def frames(index: int) -> np.ndarray:
        clip = read(index)
        # Repaired on the whole frame before the cut, where the repair's per-frame median is the room's.
        clip = processor.clean(clip) if has_invalid(clip, processor.invalid_floor) else np.asarray(clip, np.float32)
        _, height, width = clip.shape
        if mode == "annotation":
            cx, cy = dataset._reader.columns["bbox"][index][:2]  # YOLO, normalised
            centre = (cy * height, cx * width)
        else:
            centre = blob_centre(clip[len(clip) // 2]) or (height / 2, width / 2)
        return crop_square(clip, centre, size)

    dataset._reader.frames = frames


def patch_dataset(mode: str, size: int) -> None:
    """Every `ThermalClipDataset` built from now on reads cut windows (`crop_reader`)."""
    init = ThermalClipDataset.__init__

    def patched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        crop_reader(self, mode, size)

    ThermalClipDataset.__init__ = patched_init


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crop", choices=("annotation", "blob"), required=True)
    parser.add_argument("--crop_size", type=int, default=24, help="side of the square, in sensor pixels")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # the benchmark's overrides pass through untouched
    ours, rest = parser.parse_known_args(argv[:cut])
    rest += argv[cut:]
    patch_dataset(ours.crop, ours.crop_size)
    sys.exit(main(with_experiment_output(with_whole_room(rest), f"crop_{ours.crop}{ours.crop_size}")))
