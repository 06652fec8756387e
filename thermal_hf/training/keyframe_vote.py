"""One answer per keyframe from a model that answers per person (`target: person` with `eval_target: keyframe`).

A keyframe's label is made from its people's labels: the most common class, ties to the lowest class id
(`thermal_hf.data.windows.majority_label`). A model trained on people answers each person (each cut around their
own blob, `person_crop_size`), and the keyframe's answer is made from those answers by the same rule, so it is
scored against exactly the issue's keyframe labels (on thermal_action_v1 the rule applied to the person rows'
labels gives every one of the 387 keyframe labels). A whole-room model answers once for the room; when a
keyframe's people do different things (one standing, one lying), only answering each of them can be right.

The keyframe's scores, used for top-k and for averaging seeds, rank its answer first, then the other classes by
their number of votes, then by the people's mean probability: ``votes + 0.5 * mean probability``, plus 1 for
the answer (a tie of votes goes to the lowest id, not to the higher probability).
"""

from __future__ import annotations

import numpy as np

from .metrics import to_probabilities


def keyframe_groups(recordings, image_ids) -> np.ndarray:
    """``(N,)`` keyframe number (0, 1, ... in order of first appearance) of each person row."""
    keys: dict[tuple[str, str], int] = {}
    return np.asarray([keys.setdefault((str(r), str(i)), len(keys)) for r, i in zip(recordings, image_ids)],
                      dtype=np.int64)


def keyframe_recordings(recordings, image_ids) -> list[str]:
    """The recording of each keyframe (one entry per keyframe, in `keyframe_groups`' order)."""
    groups = keyframe_groups(recordings, image_ids)
    recordings = list(recordings)
    first = np.unique(groups, return_index=True)[1]
    return [str(recordings[i]) for i in first]


def majority(classes: np.ndarray, num_labels: int) -> int:
    """The most common class; ties to the lowest id (the rule of the keyframe labels)."""
    return int(np.argmax(np.bincount(classes, minlength=num_labels)))  # argmax: the first of the maxima


def vote(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-person ``scores (N, K)`` and ``labels (N,)`` -> ``(keyframe scores (G, K), keyframe labels (G,), first
    person row of each keyframe (G,))`` for the keyframes ``groups (N,)`` numbers (`keyframe_groups`)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    groups = np.asarray(groups, dtype=np.int64).reshape(-1)
    if not len(scores) == len(labels) == len(groups):
        raise ValueError(f"{len(scores)} score rows, {len(labels)} labels and {len(groups)} keyframe numbers")
    num_labels = scores.shape[1]
    probabilities, answers = to_probabilities(scores), scores.argmax(axis=1)
    num_groups = int(groups.max()) + 1 if len(groups) else 0
    out_scores = np.zeros((num_groups, num_labels))
    out_labels = np.zeros(num_groups, dtype=np.int64)
    first = np.zeros(num_groups, dtype=np.int64)
    for group in range(num_groups):
        rows = np.flatnonzero(groups == group)
        votes = np.bincount(answers[rows], minlength=num_labels).astype(np.float64)
        out_scores[group] = votes + 0.5 * probabilities[rows].mean(axis=0)
        out_scores[group, majority(answers[rows], num_labels)] += 1.0
        out_labels[group] = majority(labels[rows], num_labels)
        first[group] = rows[0]
    return out_scores, out_labels, first


__all__ = ["keyframe_groups", "keyframe_recordings", "majority", "vote"]
