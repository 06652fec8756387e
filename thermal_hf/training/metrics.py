"""Classification metrics, offline and in numpy (``evaluate.load("accuracy")`` needs the Hub).

`compute_classification_metrics` is the one implementation; `make_compute_metrics` adapts it to
`Trainer(compute_metrics=...)`, logging only scalars and keeping the per-class table and the confusion matrix
on the callable (``.last_report``) for reports and the model card.

Under multi-process evaluation `Trainer` gathers the predictions with accelerate's ``gather_for_metrics``, which
drops the samples duplicated to even out the last batch, so every process computes these on exactly the
evaluated split (tested: 1 and 2 processes give the same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: keys `make_compute_metrics` logs (Trainer prefixes them with ``eval_``).
SCALAR_KEYS = (
    "accuracy",
    "top1_accuracy",
    "top3_accuracy",
    "top5_accuracy",
    "mean_class_accuracy",
    "macro_f1",
)


#: scalar keys added at the coarse level when the class names are two-level (``coarse-fine``).
COARSE_SCALAR_KEYS = ("coarse_accuracy", "coarse_mean_class_accuracy", "coarse_macro_f1")


def coarse_groups(label_names: Sequence[str]) -> tuple[list[str], np.ndarray] | None:
    """``(coarse_names, fine_to_coarse)`` for two-level ``coarse-fine`` class names, else None.

    The users' classes are named ``"lying down-lying with risk"``, ``"transition-normal transition"``...; the part
    before the first dash is the coarse group (the posture), single words are their own group. Coarse-level
    metrics say whether the model sees the posture, fine-level ones whether it also reads the context.
    """
    names = [str(n) for n in label_names]
    if not any("-" in n for n in names):
        return None
    coarse_of = [n.split("-", 1)[0].strip() for n in names]
    coarse_names = list(dict.fromkeys(coarse_of))  # first-appearance order
    return coarse_names, np.asarray([coarse_names.index(c) for c in coarse_of], dtype=np.int64)


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax of logits; rows that already are probabilities (non-negative, summing to 1) are kept."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size and scores.min() >= 0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def coarse_scores(scores: np.ndarray, fine_to_coarse: np.ndarray, num_coarse: int) -> np.ndarray:
    """``(N, num_coarse)`` group scores: the highest probability among each group's classes.

    The max, not the sum: the coarse answer is then always the group of the model's fine answer (what a user
    reads off the model), and a group of four rare classes cannot outvote the one class the model prefers.
    Top-k at the coarse level ranks the groups by their best class.
    """
    probabilities = to_probabilities(scores)
    out = np.zeros((probabilities.shape[0], num_coarse), dtype=np.float64)
    np.maximum.at(out.T, fine_to_coarse, probabilities.T)
    return out


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of samples whose label is among the ``k`` highest scores (``k`` capped at the number of classes)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    # argsort is stable, so equal scores rank by class id, as argmax does for top-1.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> np.ndarray:
    """``(num_labels, num_labels)`` int64 counts; rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def compute_classification_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    num_labels: int | None = None,
    label_names: Sequence[str] | None = None,
) -> dict:
    """Metrics of ``scores`` (logits or probabilities, ``(N, K)``) against integer ``labels`` ``(N,)``.

    Returns a dict with
      - ``top1_accuracy`` (alias ``accuracy``), ``top3_accuracy``, ``top5_accuracy``;
      - ``mean_class_accuracy``: mean recall over the classes present in ``labels`` (absent classes have no
        recall; counting them as 0 would punish the model for the split, not for its predictions);
      - ``macro_f1``: mean F1 over the classes present in ``labels`` or predicted (scikit-learn's default set);
      - ``per_class``: ``{name: {precision, recall, f1, support}}`` for every class (0.0 where undefined);
      - ``confusion_matrix`` (list of lists, rows true, columns predicted) and ``num_samples``;
      - for two-level class names (`coarse_groups`), the same at the coarse level under ``coarse_*`` keys
        (``coarse_accuracy``, ``coarse_mean_class_accuracy``, ``coarse_macro_f1``, ``coarse_per_class``,
        ``coarse_confusion_matrix``, ``coarse_label_names``): the fine prediction read at the group level
        (`coarse_scores`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be (N, K) with N = len(labels) = {len(labels)}; got {scores.shape}")
    num_labels = int(num_labels or scores.shape[1])
    if label_names is None:
        label_names = [str(i) for i in range(num_labels)]
    label_names = list(label_names)
    if len(label_names) != num_labels:
        raise ValueError(f"{len(label_names)} label names for {num_labels} classes")
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f"labels must be in 0..{num_labels - 1}; got {labels.min()}..{labels.max()}")

    predictions = scores.argmax(axis=1) if len(labels) else labels
    matrix = confusion_matrix(labels, predictions, num_labels)
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, true_positive / np.maximum(support, 1), 0.0)
        precision = np.where(predicted > 0, true_positive / np.maximum(predicted, 1), 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    present = support > 0
    in_f1 = present | (predicted > 0)

    top1 = float((predictions == labels).mean()) if len(labels) else float("nan")
    report = {
        "accuracy": top1,
        "top1_accuracy": top1,
        "top3_accuracy": top_k_accuracy(scores, labels, 3),
        "top5_accuracy": top_k_accuracy(scores, labels, 5),
        "mean_class_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[in_f1].mean()) if in_f1.any() else float("nan"),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "predicted": int(predicted[i]),  # precision is undefined (reported 0) when this is 0
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": matrix.tolist(),
        "num_samples": int(len(labels)),
    }
    groups = coarse_groups(label_names)
    if groups is not None and len(labels):
        coarse_names, fine_to_coarse = groups
        coarse = compute_classification_metrics(
            coarse_scores(scores, fine_to_coarse, len(coarse_names)), fine_to_coarse[labels], len(coarse_names), coarse_names
        )
        for key in ("accuracy", "mean_class_accuracy", "macro_f1", "per_class", "confusion_matrix"):
            report[f"coarse_{key}"] = coarse[key]
        report["coarse_label_names"] = coarse_names
    return report


class ClassificationMetrics:
    """`Trainer` ``compute_metrics``: logs the scalar metrics, keeps the full report in ``last_report``.

    With ``keyframe_groups`` (the keyframe number of each evaluated person row, `keyframe_vote.keyframe_groups`)
    the per-person answers are first made into one answer per keyframe (`keyframe_vote.vote`), and every metric,
    ``last_scores`` and ``last_labels`` are the keyframes'; ``last_rows`` is then each keyframe's first person row.
    """

    def __init__(self, label_names: Sequence[str], keyframe_groups: np.ndarray | None = None):
        self.label_names = list(label_names)
        self.keyframe_groups = None if keyframe_groups is None else np.asarray(keyframe_groups, dtype=np.int64)
        self.last_report: dict | None = None
        self.last_scores: np.ndarray | None = None
        self.last_labels: np.ndarray | None = None
        self.last_rows: np.ndarray | None = None

    def __call__(self, eval_pred) -> dict[str, float]:
        scores = eval_pred.predictions
        if isinstance(scores, (tuple, list)):
            scores = scores[0]
        labels = np.asarray(eval_pred.label_ids).reshape(-1)
        rows = np.arange(len(labels))
        if self.keyframe_groups is not None:
            from .keyframe_vote import vote

            if len(self.keyframe_groups) != len(labels):
                raise ValueError(f"{len(labels)} evaluated clips, but keyframe numbers for {len(self.keyframe_groups)}")
            scores, labels, rows = vote(scores, labels, self.keyframe_groups)
        report = compute_classification_metrics(scores, labels, len(self.label_names), self.label_names)
        self.last_report = report
        self.last_scores = np.asarray(scores, dtype=np.float32)
        self.last_labels = labels
        self.last_rows = rows
        return {key: report[key] for key in SCALAR_KEYS + COARSE_SCALAR_KEYS if key in report}


def make_compute_metrics(label_names: Sequence[str], keyframe_groups: np.ndarray | None = None) -> ClassificationMetrics:
    """The ``compute_metrics`` callable for `Trainer` (see `ClassificationMetrics`)."""
    return ClassificationMetrics(label_names, keyframe_groups)


__all__ = [
    "compute_classification_metrics",
    "make_compute_metrics",
    "ClassificationMetrics",
    "top_k_accuracy",
    "confusion_matrix",
    "SCALAR_KEYS",
    "COARSE_SCALAR_KEYS",
    "coarse_groups",
    "coarse_scores",
    "to_probabilities",
]
