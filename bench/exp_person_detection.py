"""How well the person detector of `thermal_hf.data.person_crop` finds the annotated people (BENCHMARKS.md).

    .venv/bin/python bench/exp_person_detection.py recipes/thermal_native.yaml \
        --dataset ../shared/datasets/thermal_action_v1 [--thresholds 1 1.5 2 2.5 3 3.5 4]

On the keyframe (the middle frame) of every annotated person's window of the recipe's person conversion, for each
threshold (C above the frame's median; blobs of `MIN_PERSON_PIXELS` or more):

- people found: annotated people with a blob centre inside their box grown by a pixel;
- precision: blobs whose centre lies in some person's box (grown by a pixel), of all blobs;
- largest blob in a person: keyframes whose largest blob lies in some person's box (what `find_person` answers
  for a keyframe, a pipeline input or a window of a recording);
- blob sizes and peak temperatures of the blobs that are a person and of the others.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from scipy import ndimage

from thermal_hf.benchmark import parse
from thermal_hf.data.convert import ClipReader
from thermal_hf.data.person_crop import MIN_PERSON_PIXELS, person_blobs
from thermal_hf.data.transforms import repair_invalid
from thermal_hf.train import load_data


def keyframes(recipe: str, dataset: str) -> tuple[dict, dict]:
    """``({(recording, image_id): keyframe (H, W)}, {(recording, image_id): [YOLO boxes]})`` of the person windows."""
    parsed = parse([recipe, "--dataset", dataset, "--target", "person"])
    data = load_data(parsed.data_args, parsed.training_args)
    frames, boxes = {}, defaultdict(list)
    for split in data.dataset.values():
        reader = ClipReader(split)
        for i in range(len(reader)):
            key = (reader.columns["recording"][i], reader.columns["image_id"][i])
            if key not in frames:
                clip = repair_invalid(np.asarray(reader.frames(i), np.float32), parsed.data_args.invalid_floor)
                frames[key] = clip[len(clip) // 2]
            boxes[key].append(reader.columns["bbox"][i])
    return frames, boxes


def in_box(centre, box, height: int, width: int) -> bool:
    cx, cy, w, h = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    return abs(centre[0] - cy) <= h / 2 + 1 and abs(centre[1] - cx) <= w / 2 + 1


def blob_table(frame: np.ndarray, threshold: float) -> list[tuple[int, float]]:
    """(pixels, peak C above the median) of each blob `person_blobs` keeps, largest first."""
    excess = frame - np.median(frame)
    labelled, count = ndimage.label(excess > threshold)
    sizes = ndimage.sum(excess > threshold, labelled, range(1, count + 1))
    peaks = ndimage.maximum(excess, labelled, range(1, count + 1))
    kept = sorted(((int(s), float(p)) for s, p in zip(sizes, peaks) if s >= MIN_PERSON_PIXELS), key=lambda r: -r[0])
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
    args = parser.parse_args()
    frames, boxes = keyframes(args.recipe, args.dataset)
    people = sum(map(len, boxes.values()))
    print(f"{len(frames)} keyframes, {people} annotated people")
    for threshold in args.thresholds:
        found = blobs_in_people = blobs = largest_ok = 0
        sizes = {True: [], False: []}
        for key, frame in frames.items():
            height, width = frame.shape
            centres = person_blobs(frame, threshold)
            table = blob_table(frame, threshold)
            found += sum(any(in_box(c, b, height, width) for c in centres) for b in boxes[key])
            is_person = [any(in_box(c, b, height, width) for b in boxes[key]) for c in centres]
            blobs_in_people += sum(is_person)
            blobs += len(centres)
            largest_ok += bool(is_person) and is_person[0]
            for person, row in zip(is_person, table):
                sizes[person].append(row)
        print(f"{threshold:g} C: people found {found}/{people} ({found / people:.1%}), precision "
              f"{blobs_in_people}/{blobs} ({blobs_in_people / max(blobs, 1):.1%}), largest blob in a person "
              f"{largest_ok}/{len(frames)}", end="")
        for person, name in ((True, "person"), (False, "other")):
            if sizes[person]:
                pixels, peaks = np.array(sizes[person]).T
                print(f"; {name} blobs: median {np.median(pixels):g} pixels, {np.median(peaks):.1f} C", end="")
        print()


if __name__ == "__main__":
    main()
