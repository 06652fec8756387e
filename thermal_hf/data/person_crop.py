"""The person's neighbourhood instead of the whole room: find the person in a frame, cut a square around them.

Why: a model that sees the whole room learns the rooms it was trained in (their beds, where their people usually
are) and carries little of it to a room it has never seen; cut around the person, the same posture looks the same
in every room (BENCHMARKS.md, "The person's box as input"). Used by `ThermalVideoProcessor` when its
``person_crop_size`` is set:

- any clip (a keyframe of several people, a pipeline input, a window of a recording) is cut around the person
  found by `find_person`: the largest blob warmer than the frame's median by ``threshold`` C. On the 387
  annotated keyframes of thermal_action_v1 (3 C, 4 pixels) its centre lies in an annotated person's box every
  time; the other warm blobs there (lamps, devices) are small, a median 9 pixels against the people's 50. A
  lower threshold merges people lying on a warm bed with the bed (1.5 C: 56 % of the keyframes);
- a clip labelled for one annotated person (``target: person``) around the blob of that person (`find_person`
  with the person's box: the blob whose centre lies in the box, 499 of the 500 people there), so that training
  clips are centred as the clips a sensor cuts are (the blob's centre is 1-3 pixels from the box's: the warm head
  and shoulders are not the box's middle).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_PERSON_THRESHOLD = 3.0  # C above the frame's median
MIN_PERSON_PIXELS = 4  # smaller warm blobs are noise or hot spots


def person_blobs(frame: np.ndarray, threshold: float = DEFAULT_PERSON_THRESHOLD) -> list[tuple[float, float]]:
    """(row, column) centres of the blobs of `MIN_PERSON_PIXELS` or more warmer than the frame's median by
    ``threshold``, largest first."""
    frame = np.asarray(frame, dtype=np.float32)
    mask = frame - np.median(frame) > threshold
    labelled, count = ndimage.label(mask)
    if count == 0:
        return []
    # One pass of bincounts for every blob's size and centre (ndimage.center_of_mass per blob was most of the time
    # of this function, which runs on every clip): the same float64 sums, so the same centres to the bit.
    labels = labelled.ravel()
    rows, cols = np.indices(mask.shape, dtype=np.float64)
    sizes = np.bincount(labels, minlength=count + 1)[1:].astype(np.float64)
    row_sums = np.bincount(labels, weights=rows.ravel(), minlength=count + 1)[1:]
    col_sums = np.bincount(labels, weights=cols.ravel(), minlength=count + 1)[1:]
    keep = sorted((index for index in range(count) if sizes[index] >= MIN_PERSON_PIXELS), key=lambda i: -sizes[i])
    return [(float(row_sums[i] / sizes[i]), float(col_sums[i] / sizes[i])) for i in keep]


def find_person(frame: np.ndarray, threshold: float = DEFAULT_PERSON_THRESHOLD,
                box=None) -> tuple[float, float] | None:
    """(row, column) of the largest warm blob (`person_blobs`), or None when nothing is that warm. With a YOLO
    ``box`` (``cx, cy, w, h`` in 0..1): the blob whose centre lies in the box grown by a pixel, the nearest to the
    box's centre, or None when none does."""
    blobs = person_blobs(frame, threshold)
    if box is None:
        return blobs[0] if blobs else None
    height, width = np.shape(frame)
    cy, cx = box_centre(box, height, width)
    half_h, half_w = float(box[3]) * height / 2 + 1, float(box[2]) * width / 2 + 1
    inside = [(row, col) for row, col in blobs if abs(row - cy) <= half_h and abs(col - cx) <= half_w]
    return min(inside, key=lambda c: (c[0] - cy) ** 2 + (c[1] - cx) ** 2) if inside else None


def box_centre(box, height: int, width: int) -> tuple[float, float]:
    """(row, column) of a YOLO box ``(cx, cy, w, h)`` normalised to 0..1."""
    return float(box[1]) * height, float(box[0]) * width


def crop_square(frames: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    """``(T, size, size)`` cut of ``(T, H, W)`` centred on (row, column), the same in every frame; outside the
    frame the border's values are repeated (the floor, not a cold edge the model would read as a wall)."""
    frames = np.asarray(frames)
    height, width = frames.shape[1:]
    top = int(round(centre[0] - size / 2))
    left = int(round(centre[1] - size / 2))
    # Clamped indices are edge padding without padding the whole clip first.
    rows = np.clip(np.arange(top, top + size), 0, height - 1)
    cols = np.clip(np.arange(left, left + size), 0, width - 1)
    return frames[:, rows[:, None], cols[None, :]]

__all__ = ["DEFAULT_PERSON_THRESHOLD", "MIN_PERSON_PIXELS", "box_centre", "crop_square", "find_person", "person_blobs"]
