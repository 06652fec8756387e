"""Per-person answers voted into keyframes (`thermal_hf.training.keyframe_vote`)."""

from __future__ import annotations

import numpy as np
import pytest

from thermal_hf.training.keyframe_vote import keyframe_groups, keyframe_recordings, vote
from thermal_hf.training.metrics import make_compute_metrics


def _logits(answers, num_labels=4):
    return np.eye(num_labels)[answers] * 5.0


def test_keyframe_groups_number_keyframes_in_order_of_first_appearance():
    groups = keyframe_groups(["R1", "R1", "R2", "R1", "R2"], ["a", "b", "a", "a", "a"])
    np.testing.assert_array_equal(groups, [0, 1, 2, 0, 2])
    assert keyframe_recordings(["R1", "R1", "R2", "R1", "R2"], ["a", "b", "a", "a", "a"]) == ["R1", "R1", "R2"]


def test_vote_follows_the_keyframe_label_rule():
    # keyframe 0: two people, standing (1) and lying (3): label and answer both go to the lowest id on a tie
    # keyframe 1: three people, 2 x class 3 and 1 x class 0: the majority; keyframe 2: one person
    labels = np.array([1, 3, 3, 3, 0, 2])
    answers = np.array([3, 1, 3, 0, 3, 1])
    groups = np.array([0, 0, 1, 1, 1, 2])
    scores, keyframe_labels, first = vote(_logits(answers), labels, groups)
    np.testing.assert_array_equal(keyframe_labels, [1, 3, 2])
    np.testing.assert_array_equal(scores.argmax(axis=1), [1, 3, 1])  # tie -> 1; 2 votes for 3; the one answer
    np.testing.assert_array_equal(first, [0, 2, 5])
    # the other classes follow by votes, then by mean probability
    assert np.argsort(-scores[1])[:2].tolist() == [3, 0]
    with pytest.raises(ValueError, match="keyframe numbers"):
        vote(_logits(answers), labels, groups[:3])


def test_compute_metrics_scores_the_keyframes():
    from transformers import EvalPrediction

    labels = np.array([1, 3, 3, 3, 0, 2])
    answers = np.array([3, 1, 3, 0, 3, 1])
    groups = np.array([0, 0, 1, 1, 1, 2])
    names = ["a", "b", "c", "d"]
    per_person = make_compute_metrics(names)(EvalPrediction(_logits(answers), labels))
    voted = make_compute_metrics(names, groups)
    metrics = voted(EvalPrediction(_logits(answers), labels))
    assert per_person["accuracy"] == pytest.approx(1 / 6)
    assert metrics["accuracy"] == pytest.approx(2 / 3)  # keyframes 0 and 1 right, 2 wrong
    assert voted.last_report["num_samples"] == 3 and voted.last_rows.tolist() == [0, 2, 5]
