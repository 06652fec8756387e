"""Keyframes -> samples: which frames form a sample's window and what the sample is labelled with.

Window convention (the users'): ``num_frames // 2`` frames before the keyframe, the keyframe, and the rest
after it; for 64 frames that is 32 + 1 + 31. A window that crosses the start or end of its recording is
padded by repeating the first or last frame, and the number of padded frames is recorded with the sample.

With a ``frame_rate`` (`time_window_indices`) the same slots are instants ``1 / frame_rate`` seconds apart on
the recording's own timestamps, each filled with the recorded frame nearest to it. The sensors record in bursts
(35 ms between frames, then gaps of up to 2.6 s, 6 to 26 frames a second on average), so 64 recorded frames
span anything from 2 to 15 s; 64 instants at a fixed rate always span the same time.

Targets:

* ``person`` (default): one sample per person annotation, labelled with that person's class, carrying that
  person's bbox.
* ``keyframe``: one sample per keyframe, labelled with the most common class among its persons. Ties are
  broken by the LOWEST category id (deterministic, independent of annotation order). Its bbox is the union
  box of all its persons; its ``object_id`` is -1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .recordings import AnnotationSet, PersonAnnotation, Problem

TARGETS = ("person", "keyframe")


def window_indices(keyframe_index: int, num_frames: int, total: int) -> tuple[np.ndarray, int, int]:
    """Frame indices of the window around ``keyframe_index`` in a recording of ``total`` frames.

    Returns ``(indices int64[num_frames], padded_before, padded_after)``; indices outside the recording are
    clamped to its first/last frame (edge-frame repetition) and counted in ``padded_before``/``padded_after``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if total < 1:
        raise ValueError(f"recording has no frames (total={total})")
    if not 0 <= keyframe_index < total:
        raise ValueError(f"keyframe_index {keyframe_index} is outside the recording (0..{total - 1})")
    start = keyframe_index - num_frames // 2
    raw = np.arange(start, start + num_frames, dtype=np.int64)
    padded_before = int(np.count_nonzero(raw < 0))
    padded_after = int(np.count_nonzero(raw >= total))
    return np.clip(raw, 0, total - 1), padded_before, padded_after


def nearest_frames(timestamps: np.ndarray, instants: np.ndarray) -> np.ndarray:
    """Index of the frame whose timestamp is nearest to each instant (ties: the earlier frame), int64.

    ``timestamps`` must be non-decreasing (the recordings' validation checks it); instants outside the recording
    take its first or last frame.
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    instants = np.asarray(instants, dtype=np.float64)
    if stamps.shape[0] == 1:
        return np.zeros(instants.shape, dtype=np.int64)
    right = np.searchsorted(stamps, instants, side="left").clip(1, stamps.shape[0] - 1)
    left = right - 1
    # The later neighbour only when strictly nearer.
    return np.where(stamps[right] - instants < instants - stamps[left], right, left).astype(np.int64)


def time_window_indices(
    timestamps: np.ndarray, anchor_index: int, num_frames: int, frame_rate: float, *, anchor: str = "centre"
) -> tuple[np.ndarray, int, int]:
    """Frame indices of a window resampled in time: ``num_frames`` instants ``1 / frame_rate`` s apart.

    ``anchor="centre"``: the instant of frame ``anchor_index`` takes the slot ``num_frames // 2`` (as
    `window_indices`); ``anchor="start"``: it takes slot 0. Each instant takes the frame whose timestamp is nearest
    (ties: the earlier frame), so a gap in the recording repeats the frame before or after it and a burst is
    thinned out. ``timestamps`` are the recording's (milliseconds, non-decreasing).

    Returns ``(indices int64[num_frames], padded_before, padded_after)``: instants more than half a slot before the
    first or after the last timestamp take the edge frame and are counted as padding.
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    total = stamps.shape[0]
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not frame_rate > 0:
        raise ValueError(f"frame_rate must be > 0 frames per second, got {frame_rate}")
    if total < 1:
        raise ValueError(f"recording has no frames (total={total})")
    if not 0 <= anchor_index < total:
        raise ValueError(f"frame index {anchor_index} is outside the recording (0..{total - 1})")
    if total > 1 and np.any(np.diff(stamps) < 0):
        raise ValueError("timestamps must be non-decreasing to resample a window in time")
    if anchor not in ("centre", "start"):
        raise ValueError(f"anchor must be 'centre' or 'start', got {anchor!r}")
    step_ms = 1000.0 / float(frame_rate)
    first_slot = -(num_frames // 2) if anchor == "centre" else 0
    instants = stamps[anchor_index] + (np.arange(num_frames, dtype=np.float64) + first_slot) * step_ms
    indices = nearest_frames(stamps, instants)
    padded_before = int(np.count_nonzero(instants < stamps[0] - step_ms / 2))
    padded_after = int(np.count_nonzero(instants > stamps[-1] + step_ms / 2))
    return indices, padded_before, padded_after


@dataclass(frozen=True)
class SampleSpec:
    """Everything about one sample except its frames (which are read at conversion time)."""

    recording: str
    image_id: str
    keyframe_index: int
    label: int
    bbox: tuple[float, float, float, float]
    object_id: int
    annotation_ids: tuple[Any, ...]


def union_bbox(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """Smallest YOLO ``[cx, cy, w, h]`` box containing all ``boxes`` (clipped to 0..1)."""
    arr = np.asarray(boxes, dtype=np.float64)
    x0 = np.clip(arr[:, 0] - arr[:, 2] / 2, 0, 1).min()
    y0 = np.clip(arr[:, 1] - arr[:, 3] / 2, 0, 1).min()
    x1 = np.clip(arr[:, 0] + arr[:, 2] / 2, 0, 1).max()
    y1 = np.clip(arr[:, 1] + arr[:, 3] / 2, 0, 1).max()
    return (float((x0 + x1) / 2), float((y0 + y1) / 2), float(x1 - x0), float(y1 - y0))


def majority_label(category_ids: list[int]) -> int:
    """Most common category id; ties go to the lowest id."""
    counts = Counter(category_ids)
    best = max(counts.values())
    return min(c for c, n in counts.items() if n == best)


def build_samples(annotations: AnnotationSet, target: str = "person") -> tuple[list[SampleSpec], list[Problem]]:
    """Sample specs of one validated annotation set, sorted by (recording, keyframe, object id).

    Returns ``(samples, skipped)``: keyframes without persons never make a sample, and with the keyframe
    target a keyframe with an unusable person annotation is skipped (its majority label is ill-defined).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    by_image: dict[str, list[PersonAnnotation]] = {}
    for a in annotations.annotations:
        by_image.setdefault(a.image_id, []).append(a)
    samples: list[SampleSpec] = []
    skipped: list[Problem] = []
    for im in annotations.images:
        persons = by_image.get(im.id, [])
        if target == "keyframe" and im.id in annotations.tainted_image_ids:
            skipped.append(Problem(im.file, f"image {im.id}", "keyframe skipped: one of its person annotations is "
                                   "unusable, so its majority label is ill-defined", image_id=im.id))
            continue
        if not persons:
            skipped.append(Problem(im.file, f"image {im.id}", "keyframe has no person annotations; no sample",
                                   image_id=im.id))
            continue
        if target == "person":
            for a in persons:
                samples.append(SampleSpec(im.sensor_id, im.id, im.frame_idx, a.category_id, a.bbox, a.object_id, (a.id,)))
        else:
            samples.append(SampleSpec(
                im.sensor_id, im.id, im.frame_idx, majority_label([a.category_id for a in persons]),
                union_bbox([a.bbox for a in persons]), -1, tuple(a.id for a in persons),
            ))
    samples.sort(key=lambda s: (s.recording, s.keyframe_index, s.image_id, s.object_id, str(s.annotation_ids)))
    return samples, skipped
