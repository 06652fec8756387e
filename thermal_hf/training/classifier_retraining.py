"""Classifier re-training ("cRT": Kang et al., "Decoupling Representation and Classifier for Long-Tailed
Recognition", ICLR 2020): after training, refit only the last layer, class-balanced, on the frozen network.

Why: trained end to end with plain cross-entropy, the last layer learns the training prior along with everything
else (on thermal_action_v1, "lying with risk" and "standing" are 84 % of the keyframes), so a rare class the
features do tell apart is rarely answered; re-balancing the end-to-end loss instead (class weights, balanced
sampling) cost mean class accuracy on unseen recordings (BENCHMARKS.md, ablation). Here the features stay as they
are and only the last layer is refitted: a multinomial logistic regression (scikit-learn) with class-balanced
weights on the pooled features of ``passes`` augmented passes over the training clips, standardised, then folded
back into the ``proj`` layer, so the saved model is an ordinary model: inference, `predict`, the pipeline and the
Hub do not know it was re-trained.

Measured on thermal_action_v1 (BENCHMARKS.md, "The person recipe's other knobs"): it gets rare classes right that
nothing else did, at the cost of the common ones, and how much depends on the augmentations drawn; off by default.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

logger = logging.getLogger(__name__)


def last_layer(model) -> torch.nn.Linear:
    """The classification layer: the ``proj`` of the head block (`ThermalSlowFastForVideoClassification`)."""
    return model.slowfast.blocks[-1].proj


@torch.no_grad()
def pooled_features(model, loader, *, progress: bool = True, description: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """``(features (N, C) float64, labels (N,))``: the input of the last layer, averaged over its positions (the
    head averages the layer's outputs over them, and a linear layer commutes with the mean), in eval mode, of each
    clip as given (one view, whatever the model's ``test_time_views``)."""
    from tqdm.auto import tqdm

    captured: dict[str, torch.Tensor] = {}
    layer = last_layer(model)
    hook = layer.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0]))
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    features, labels = [], []
    try:
        for batch in tqdm(loader, desc=description, disable=not progress, leave=False):
            model.single_view_logits(batch["pixel_values"].to(device))
            x = captured["x"].float()
            features.append(x.reshape(len(x), -1, layer.in_features).mean(dim=1).cpu().numpy().astype(np.float64))
            labels.append(batch["labels"].cpu().numpy())
    finally:
        hook.remove()
        model.train(was_training)
    return np.concatenate(features), np.concatenate(labels)


def fit_balanced_layer(features: np.ndarray, labels: np.ndarray, num_labels: int, c: float = 1.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (K, C), bias (K,))`` of a linear layer whose logits are those of a class-balanced multinomial
    logistic regression fitted on standardised ``features``. A class without training clips gets a zero weight and
    a bias 30 below the lowest one: it is never answered (its probability is under 1e-13 of the others')."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"retrain_classifier: the training clips have {len(present)} class; it needs at least 2")
    # Standardised, with each feature's spread floored at 1 % of the median one: a feature that barely varies would
    # otherwise get a weight of (coefficient / tiny spread) once folded, and the model's answers would swing with
    # float noise in that feature (a batch size or a device computing it 1e-7 differently).
    mean, spread = features.mean(axis=0), features.std(axis=0)
    std = np.maximum(spread, 0.01 * np.median(spread) + 1e-12)
    classifier = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    classifier.fit((features - mean) / std, labels)
    coef, intercept = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:  # scikit-learn keeps one row for two classes: logit(second) - logit(first)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
    weight, bias = coef / std, intercept - (coef * (mean / std)).sum(axis=1)  # folded standardisation
    full_weight = np.zeros((num_labels, features.shape[1]))
    full_bias = np.full(num_labels, bias.min() - 30.0)
    full_weight[classifier.classes_], full_bias[classifier.classes_] = weight, bias
    return full_weight, full_bias


#: The epoch number pass p of the refit draws its augmentations as (with DataLoader workers): past any training's,
#: so no pass repeats an epoch the network was trained on.
_FIRST_PASS_EPOCH = 1 << 32


def retrain_classifier(model, dataset, *, collate_fn, passes: int = 3, c: float = 1.0, batch_size: int = 32,
                       num_workers: int = 0, seed: int = 0, is_main_process: bool = True,
                       distributed: bool = False, progress: bool = True) -> dict:
    """Refit ``model``'s last layer in place on ``passes`` passes over ``dataset`` (the augmented training clips)
    and return ``{"retrain_classifier_clips": ..., "retrain_classifier_seconds": ...}``.

    Under several processes the main one fits and the layer is broadcast from it, so every process evaluates the
    same model."""
    layer = last_layer(model)
    started, clips = time.perf_counter(), 0
    if is_main_process:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                             collate_fn=collate_fn)
        parts = []
        for p in range(passes):
            if hasattr(dataset, "set_epoch"):  # DataLoader workers key their draws on it: each pass draws anew
                dataset.set_epoch(_FIRST_PASS_EPOCH + p)
            parts.append(pooled_features(model, loader, progress=progress,
                                         description=f"retrain_classifier pass {p + 1}/{passes}"))
        features, labels = np.concatenate([f for f, _ in parts]), np.concatenate([y for _, y in parts])
        clips = len(labels)
        weight, bias = fit_balanced_layer(features, labels, layer.out_features, c=c, seed=seed)
        layer.weight.data.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        layer.bias.data.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    if distributed:
        torch.distributed.broadcast(layer.weight.data, src=0)
        torch.distributed.broadcast(layer.bias.data, src=0)
    seconds = time.perf_counter() - started
    if is_main_process:
        logger.info(f"retrain_classifier: last layer refitted, class-balanced, on {clips} augmented clips "
                    f"({passes} passes) in {seconds:.1f} s")
    return {"retrain_classifier_clips": clips, "retrain_classifier_seconds": round(seconds, 2)}


__all__ = ["fit_balanced_layer", "last_layer", "pooled_features", "retrain_classifier"]
