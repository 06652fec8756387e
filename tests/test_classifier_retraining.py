"""`retrain_classifier` (cRT): the last layer refitted, class-balanced, on the frozen network, folded into the layer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_IMAGE_SIZE, TINY_NUM_FRAMES, make_tiny_model

from thermal_hf.errors import RecipeError
from thermal_hf.training.classifier_retraining import (
    fit_balanced_layer,
    last_layer,
    pooled_features,
    retrain_classifier,
)
from thermal_hf.training.data import collate_clips

TINY = Path(__file__).resolve().parent / "recipes" / "tiny.yaml"


def _separable(rng, counts, dim=6):
    """Features of len(counts) classes around different centres; class c has counts[c] rows."""
    centres = rng.normal(0.0, 3.0, size=(len(counts), dim))
    x = np.concatenate([centres[c] + rng.normal(0.0, 1.0, size=(n, dim)) for c, n in enumerate(counts)])
    return x, np.repeat(np.arange(len(counts)), counts)


def test_folded_layer_gives_the_balanced_regressions_answers():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x, y = _separable(rng, [60, 6, 3])
    y = np.array([0, 2, 4])[y]  # classes 0, 2 and 4 of 5: 1 and 3 have no training clips
    weight, bias = fit_balanced_layer(x, y, num_labels=5)
    assert weight.shape == (5, 6) and bias.shape == (5,)
    logits = x @ weight.T + bias
    mean, std = x.mean(0), x.std(0)
    reference = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=0).fit((x - mean) / std, y)
    np.testing.assert_allclose(logits[:, [0, 2, 4]], reference.decision_function((x - mean) / std), atol=1e-8)
    assert set(logits.argmax(1)) <= {0, 2, 4}  # a class never seen is never answered
    # balanced: the rare classes are recalled although the regression sees 20x more of class 0
    answers = logits.argmax(1)
    assert (answers[y == 2] == 2).mean() > 0.8 and (answers[y == 4] == 4).mean() > 0.6


def test_a_feature_that_barely_varies_gets_no_huge_weight():
    rng = np.random.default_rng(2)
    x, y = _separable(rng, [40, 10])
    x = np.hstack([x, 5.0 + 1e-7 * rng.normal(size=(len(x), 1))])  # float noise around a constant
    weight, bias = fit_balanced_layer(x, y, num_labels=2)
    nudged = x.copy()
    nudged[:, -1] += 1e-6  # the noise a different batch size or device could make
    np.testing.assert_allclose(nudged @ weight.T + bias, x @ weight.T + bias, atol=1e-3)


def test_two_classes_fold_to_two_rows():
    x, y = _separable(np.random.default_rng(1), [30, 5])
    weight, bias = fit_balanced_layer(x, y, num_labels=3)
    logits = x @ weight.T + bias
    assert (logits.argmax(1) == y).mean() > 0.9 and not (logits.argmax(1) == 2).any()
    with pytest.raises(ValueError, match="at least 2"):
        fit_balanced_layer(x, np.zeros(len(x), dtype=int), num_labels=3)


class _Clips(torch.utils.data.Dataset):
    def __init__(self, n=24, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.labels = [0] * 16 + [3] * 6 + [5] * (n - 22)
        self.clips = torch.randn(n, TINY_NUM_FRAMES, *TINY_IMAGE_SIZE, generator=g)
        for i, label in enumerate(self.labels):
            self.clips[i, :, : 4 * (label + 1)] += 2.0  # something class-dependent for the features to carry

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"pixel_values": self.clips[index], "labels": self.labels[index]}


def test_retrain_changes_only_the_last_layer_and_the_model_answers_as_the_fit(tmp_path):
    torch.manual_seed(0)
    model = make_tiny_model(num_labels=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clips = _Clips()
    summary = retrain_classifier(model, clips, collate_fn=collate_clips, passes=2, batch_size=8, progress=False)
    assert summary["retrain_classifier_clips"] == 2 * len(clips)
    layer = last_layer(model)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"slowfast.blocks.6.proj.weight", "slowfast.blocks.6.proj.bias"}
    # the model's logits are the refitted layer applied to the frozen pooled features
    loader = torch.utils.data.DataLoader(clips, batch_size=8, collate_fn=collate_clips)
    features, labels = pooled_features(model, loader, progress=False)
    model.eval()
    with torch.no_grad():
        logits = model(clips.clips).logits.numpy()
    expected = features @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert set(logits.argmax(1)) <= {0, 3, 5}
    # saved and reloaded, it is an ordinary model giving the same answers
    model.save_pretrained(tmp_path / "m")
    reloaded = type(model).from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        np.testing.assert_allclose(reloaded(clips.clips).logits.numpy(), logits, atol=1e-5)
    # the features are those of each clip as given, whatever views the model averages when it answers
    model.config.test_time_views = 4
    np.testing.assert_array_equal(pooled_features(model, loader, progress=False)[0], features)


def test_each_pass_of_the_refit_draws_as_an_epoch_of_its_own():
    # DataLoader workers key an item's augmentation on the dataset's epoch (ThermalClipDataset.set_epoch): every
    # pass must set another, one no training epoch had, or the passes would repeat each other (or an epoch).
    class Clips(_Clips):
        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    torch.manual_seed(0)
    clips = Clips()
    clips.epochs = []
    retrain_classifier(make_tiny_model(num_labels=6), clips, collate_fn=collate_clips, passes=3, batch_size=8,
                       progress=False)
    assert len(clips.epochs) == len(set(clips.epochs)) == 3 and min(clips.epochs) > 10**6


def test_recipe_keys_are_checked(tmp_path):
    from thermal_hf.parser import parse_recipe

    parsed = parse_recipe([str(TINY), "--output_dir", str(tmp_path), "--retrain_classifier", "true",
                           "--retrain_classifier_passes", "2", "--retrain_classifier_c", "0.5"])
    args = parsed.training_args
    assert args.retrain_classifier and args.retrain_classifier_passes == 2 and args.retrain_classifier_c == 0.5
    assert not parse_recipe([str(TINY), "--output_dir", str(tmp_path)]).training_args.retrain_classifier
    with pytest.raises(RecipeError, match="retrain_classifier_passes"):
        parse_recipe([str(TINY), "--output_dir", str(tmp_path), "--retrain_classifier_passes", "0"])
    with pytest.raises(RecipeError, match="retrain_classifier_c"):
        parse_recipe([str(TINY), "--output_dir", str(tmp_path), "--retrain_classifier_c", "0"])


def test_training_run_saves_the_retrained_model(converted_dataset, tmp_path):
    from safetensors.torch import load_file

    from thermal_hf.train import main

    common = ["--dataset", str(converted_dataset), "--max_steps", "2", "--save_strategy", "no", "--report_to", "none",
              "--max_train_samples", "24", "--max_eval_samples", "8"]
    assert main([str(TINY), "--output_dir", str(tmp_path / "plain"), *common]) == 0
    assert main([str(TINY), "--output_dir", str(tmp_path / "crt"), "--retrain_classifier", "true",
                 "--retrain_classifier_passes", "2", *common]) == 0
    results = json.loads((tmp_path / "crt" / "train_results.json").read_text())
    train_clips = json.loads((tmp_path / "crt" / "class_distribution.json").read_text())
    assert results["retrain_classifier_clips"] == 2 * 24 == 2 * sum(train_clips["class_counts"]["train"].values())
    plain, crt = load_file(tmp_path / "plain" / "model.safetensors"), load_file(tmp_path / "crt" / "model.safetensors")
    differs = {key for key in plain if not torch.equal(plain[key], crt[key])}
    assert differs == {"slowfast.blocks.6.proj.weight", "slowfast.blocks.6.proj.bias"}
