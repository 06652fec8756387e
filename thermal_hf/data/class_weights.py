"""Per-class loss weights from class counts.

* ``inverse_frequency`` (the old MMAction2 integration's formula): ``w_c = N / (K * n_c)`` where ``N`` is the
  number of samples and ``K`` the number of classes *present* (``n_c > 0``); a balanced dataset gets all ones.
* ``inverse_sqrt_frequency``: ``w_c ∝ 1 / sqrt(n_c)``, normalised like ``inverse_frequency`` (mean weight 1
  over the samples). A milder correction: with a class of 1 sample among 300, inverse frequency weights it
  ~300 times a common class and the model learns to answer the rarest classes; the square root gives ~17.
* ``effective_number`` (Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019):
  ``w_c ∝ (1 - beta) / (1 - beta ** n_c)``, normalised so the present classes' weights sum to ``K``.
* ``none``: all ones.

Classes with no samples get weight 0 (there is nothing to weight) and a warning names them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

WEIGHTINGS = ("inverse_frequency", "inverse_sqrt_frequency", "effective_number", "none")


def class_weights(
    counts: Sequence[int], method: str = "inverse_frequency", beta: float = 0.999,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Weights ``np.float32[K]`` for classes with sample ``counts`` (index = class id)."""
    counts_arr = np.asarray(counts, dtype=np.float64)
    if counts_arr.ndim != 1 or counts_arr.size == 0 or np.any(counts_arr < 0):
        raise ValueError(f"counts must be a non-empty list of non-negative integers, got {list(counts)}")
    if method not in WEIGHTINGS:
        raise ValueError(f"unknown class weighting {method!r}; expected one of {WEIGHTINGS}")
    if method == "none":
        return np.ones(counts_arr.size, dtype=np.float32)
    present = counts_arr > 0
    if not present.any():
        raise ValueError("all class counts are 0: no training samples to compute class weights from")
    absent = np.flatnonzero(~present)
    if absent.size:
        names = [class_names[i] if class_names is not None else str(i) for i in absent]
        warnings.warn(f"{absent.size} class(es) have no training samples and get weight 0: {', '.join(names)}",
                      UserWarning, stacklevel=2)
    k = int(present.sum())
    weights = np.zeros_like(counts_arr)
    if method == "inverse_frequency":
        weights[present] = counts_arr.sum() / (k * counts_arr[present])
    elif method == "inverse_sqrt_frequency":
        raw = 1.0 / np.sqrt(counts_arr[present])
        weights[present] = raw * counts_arr.sum() / (raw * counts_arr[present]).sum()
    else:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        raw = (1.0 - beta) / (1.0 - np.power(beta, counts_arr[present]))
        weights[present] = raw * k / raw.sum()
    return weights.astype(np.float32)
