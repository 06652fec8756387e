"""Offline classification metrics against hand counts (and scikit-learn where it defines the same thing)."""

from __future__ import annotations

import numpy as np
import pytest

from thermal_hf.training.metrics import SCALAR_KEYS, compute_classification_metrics, make_compute_metrics


def one_hot_scores(predictions, num_labels):
    scores = np.zeros((len(predictions), num_labels), dtype=np.float32)
    scores[np.arange(len(predictions)), predictions] = 1.0
    return scores


def test_hand_counted_example():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 0, 2])
    m = compute_classification_metrics(one_hot_scores(predictions, 5), labels, 5, list("abcde"))
    assert m["accuracy"] == m["top1_accuracy"] == pytest.approx(4 / 6)
    # recalls: a 2/3, b 1/2, c 1/1; classes d, e are absent and not averaged
    assert m["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3,
                                                 "predicted": 3})
    assert m["per_class"]["d"]["support"] == 0 and m["per_class"]["d"]["predicted"] == 0
    assert m["confusion_matrix"][0] == [2, 1, 0, 0, 0] and m["confusion_matrix"][1] == [1, 1, 0, 0, 0]
    assert m["num_samples"] == 6


def test_agrees_with_sklearn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, top_k_accuracy_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=200)
    labels[labels == 5] = 4  # class 5 absent from the labels
    scores = rng.normal(size=(200, 7))
    m = compute_classification_metrics(scores, labels, 7)
    predictions = scores.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert m["mean_class_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predictions))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    for k in (3, 5):
        expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(7))
        assert m[f"top{k}_accuracy"] == pytest.approx(expected)


def test_top_k_capped_at_num_labels():
    m = compute_classification_metrics(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([0, 0]), 2)
    assert m["top1_accuracy"] == 0.5 and m["top3_accuracy"] == 1.0 and m["top5_accuracy"] == 1.0


def test_bad_input():
    with pytest.raises(ValueError):
        compute_classification_metrics(np.zeros((3, 2)), np.array([0, 1]), 2)
    with pytest.raises(ValueError):
        compute_classification_metrics(np.zeros((2, 2)), np.array([0, 5]), 2)


def test_trainer_callable_logs_scalars_keeps_report():
    from transformers import EvalPrediction

    compute = make_compute_metrics(["a", "b", "c"])
    logged = compute(EvalPrediction(predictions=(one_hot_scores([0, 1, 1], 3),), label_ids=np.array([0, 1, 2])))
    assert set(logged) == set(SCALAR_KEYS)
    assert all(isinstance(v, float) for v in logged.values())
    assert compute.last_report["confusion_matrix"][2] == [0, 1, 0]
    assert "per_class" in compute.last_report and "per_class" not in logged
