"""Native-resolution features: clip-median temperatures, vertical flips, narrow / unpooled stems, sqrt class
weights, logit adjustment, the coarse-group loss and metrics, held-out recordings and eval predictions."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import EvalPrediction, PreTrainedConfig
from transformers.modeling_outputs import ImageClassifierOutput

from thermal_hf import ThermalSlowFastConfig, ThermalSlowFastForVideoClassification, ThermalVideoProcessor
from thermal_hf.configs import ThermalTrainingArguments
from thermal_hf.data import transforms
from thermal_hf.data.class_weights import class_weights
from thermal_hf.errors import RecipeError
from thermal_hf.training.data import collate_clips
from thermal_hf.training.metrics import (
    COARSE_SCALAR_KEYS,
    SCALAR_KEYS,
    coarse_groups,
    coarse_scores,
    compute_classification_metrics,
    make_compute_metrics,
    to_probabilities,
)
from thermal_hf.training.trainer import ThermalTrainer, classification_loss

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "recipes" / "tiny.yaml"
HIERARCHY = ["standing", "lying down-lying with risk", "lying down-lying on the bed/couch", "sitting"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Two busy cores: torch's thread pool makes a tiny forward ~50x slower than one thread does.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _clip(frames=8, height=10, width=12, seed=0, low=15.0, high=35.0):
    return np.random.default_rng(seed).uniform(low, high, (frames, height, width)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# 1. transforms: clip-median reference, vertical flip
# ---------------------------------------------------------------------------------------------------------------
def test_clip_median_reference_is_invariant_to_a_room_offset():
    clip = _clip()
    rng = (-4.0, 12.0)
    out = transforms.normalize(clip, rng, reference="clip_median")
    expected = (np.clip(clip - transforms.clip_median(clip), -4.0, 12.0) + 4.0) / 16.0
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.dtype == np.float32 and out.shape == clip.shape
    # a warmer room (every pixel +3 C) gives the same model input...
    np.testing.assert_allclose(transforms.normalize(clip + 3.0, rng, reference="clip_median"), out, atol=1e-5)
    # ...unlike the absolute reference, where it shifts the output by 3 / range
    absolute = transforms.normalize(clip, (5.0, 45.0))
    shifted = transforms.normalize(clip + 3.0, (5.0, 45.0), reference="absolute")
    np.testing.assert_allclose(shifted - absolute, 3.0 / 40.0, atol=1e-5)
    # a uniform clip sits exactly at the reference: (0 - low) / (high - low)
    flat = np.full((2, 4, 4), 21.5, dtype=np.float32)
    np.testing.assert_allclose(transforms.normalize(flat, rng, reference="clip_median"), 0.25)
    # mean / std still apply after the scaling
    std = transforms.normalize(clip, rng, mean=0.2, std=0.5, reference="clip_median")
    np.testing.assert_allclose(std, (expected - 0.2) / 0.5, atol=1e-5)


def test_normalize_rejects_unknown_reference():
    with pytest.raises(ValueError, match="reference"):
        transforms.normalize(_clip(), reference="room")
    with pytest.raises(ValueError, match="reference"):
        transforms.normalize(_clip(), reference="median")


def test_vertical_flip_mirrors_clip_and_box():
    clip = _clip(frames=3, height=6, width=5)
    box = np.array([0.3, 0.2, 0.1, 0.4], dtype=np.float32)
    out, new_box = transforms.augment(clip, box, transforms.AugmentationConfig(vertical_flip_prob=1.0),
                                      np.random.default_rng(0))
    np.testing.assert_array_equal(out, clip[:, ::-1, :])
    np.testing.assert_allclose(new_box, [0.3, 0.8, 0.1, 0.4], atol=1e-7)
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.float32
    np.testing.assert_array_equal(clip, _clip(frames=3, height=6, width=5))  # input untouched
    # with the horizontal flip too: both axes mirrored, both centres moved
    both, both_box = transforms.augment(
        clip, box, transforms.AugmentationConfig(horizontal_flip_prob=1.0, vertical_flip_prob=1.0),
        np.random.default_rng(0),
    )
    np.testing.assert_array_equal(both, clip[:, ::-1, ::-1])
    np.testing.assert_allclose(both_box, [0.7, 0.8, 0.1, 0.4], atol=1e-7)
    # no box: still flips
    nobox, none_box = transforms.augment(clip, None, transforms.AugmentationConfig(vertical_flip_prob=1.0),
                                         np.random.default_rng(0))
    assert none_box is None
    np.testing.assert_array_equal(nobox, clip[:, ::-1, :])


def test_vertical_flip_off_keeps_the_random_stream():
    clip = _clip(frames=4, height=8, width=10)
    box = np.array([0.4, 0.6, 0.2, 0.3], dtype=np.float32)
    base = dict(horizontal_flip_prob=0.5, temperature_offset=1.0, sensor_noise_std=0.1, random_erasing_prob=0.5)
    for seed in range(4):
        rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
        out_a, box_a = transforms.augment(clip, box, transforms.AugmentationConfig(**base), rng_a)
        out_b, box_b = transforms.augment(clip, box, transforms.AugmentationConfig(**base, vertical_flip_prob=0.0), rng_b)
        np.testing.assert_array_equal(out_a, out_b)
        np.testing.assert_array_equal(box_a, box_b)
        assert rng_a.random() == rng_b.random()  # same number of draws
    # nothing enabled: no draw at all, clip unchanged
    rng = np.random.default_rng(7)
    config = transforms.AugmentationConfig(vertical_flip_prob=0.0)
    assert not config.enabled
    out, _ = transforms.augment(clip, box, config, rng)
    np.testing.assert_array_equal(out, clip)
    assert rng.random() == np.random.default_rng(7).random()
    assert transforms.AugmentationConfig(vertical_flip_prob=0.25).enabled


def test_vertical_flip_probability_is_respected():
    clip = _clip(frames=1, height=4, width=3)
    config = transforms.AugmentationConfig(vertical_flip_prob=0.3)
    rng = np.random.default_rng(0)
    flips = sum(not np.array_equal(transforms.augment(clip, None, config, rng)[0], clip) for _ in range(2000))
    assert 0.25 < flips / 2000 < 0.35


@pytest.mark.parametrize("prob", [-0.1, 1.5])
def test_vertical_flip_prob_out_of_range_raises(prob):
    with pytest.raises(ValueError, match="vertical_flip_prob"):
        transforms.AugmentationConfig(vertical_flip_prob=prob)


# ---------------------------------------------------------------------------------------------------------------
# 2. processor: temperature_reference
# ---------------------------------------------------------------------------------------------------------------
def test_processor_clip_median_matches_transforms_and_round_trips(tmp_path):
    from transformers import AutoVideoProcessor

    processor = ThermalVideoProcessor(num_frames=8, temperature_range=(-4.0, 12.0), temperature_reference="clip_median")
    clip = _clip(frames=8, height=40, width=60)
    clip[2, 5:9, 7:11] = -273.2  # dead pixels: repaired before the median is taken
    out = processor(clip).pixel_values[0].numpy()
    expected = transforms.normalize(transforms.repair_invalid(clip, processor.invalid_floor), (-4.0, 12.0),
                                    reference="clip_median")
    np.testing.assert_array_equal(out, expected)
    # the room offset does not reach the model; it does with the absolute reference
    warm = processor(clip + 2.5).pixel_values[0].numpy()
    np.testing.assert_allclose(warm, out, atol=1e-5)
    absolute = ThermalVideoProcessor(num_frames=8)  # 5..45 C
    assert not np.allclose(absolute(clip + 2.5).pixel_values.numpy(), absolute(clip).pixel_values.numpy())

    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["temperature_reference"] == "clip_median"
    for loaded in (ThermalVideoProcessor.from_pretrained(tmp_path), AutoVideoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is ThermalVideoProcessor
        assert loaded.temperature_reference == "clip_median"
        assert loaded.to_dict() == processor.to_dict()
        assert torch.equal(loaded(clip).pixel_values, processor(clip).pixel_values)
    # the default stays absolute (older saved processors have no key)
    assert ThermalVideoProcessor().temperature_reference == "absolute"


def test_processor_rejects_bad_temperature_reference(tmp_path):
    with pytest.raises(ValueError, match="temperature_reference"):
        ThermalVideoProcessor(temperature_reference="median")
    ThermalVideoProcessor(num_frames=8).save_pretrained(tmp_path)
    path = tmp_path / "video_preprocessor_config.json"
    saved = json.loads(path.read_text())
    saved["temperature_reference"] = "kelvin"
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="temperature_reference"):
        ThermalVideoProcessor.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# 3. model: stem_width, stem_pool
# ---------------------------------------------------------------------------------------------------------------
def _native_config(**overrides):
    kwargs = dict(model_depth=18, num_frames=8, image_size=(40, 60), stem_width=16, dropout=0.0, num_labels=3)
    kwargs.update(overrides)
    return ThermalSlowFastConfig(**kwargs)


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def test_stem_width_sets_channels_and_shrinks_the_model():
    with torch.device("meta"):  # structure only
        wide = ThermalSlowFastForVideoClassification(ThermalSlowFastConfig(model_depth=18, num_labels=14))
        narrow = ThermalSlowFastForVideoClassification(ThermalSlowFastConfig(model_depth=18, num_labels=14, stem_width=16))
    assert wide.config.stem_width == 64 and wide.config.stem_pool is True  # defaults unchanged
    for model, width in ((wide, 64), (narrow, 16)):
        stems = model.slowfast.blocks[0].multipathway_blocks
        assert stems[0].conv.out_channels == width
        assert stems[1].conv.out_channels == width // model.config.slowfast_channel_ratio
        # every stage scales with it: stage 1 slow output is 4 x the stem
        assert model.slowfast.blocks[1].multipathway_blocks[0].res_blocks[-1].branch2.conv_c.out_channels == 4 * width
    ratio = _num_params(wide) / _num_params(narrow)
    assert 14.0 < ratio < 17.0, ratio  # parameters scale with width squared: ~16x


def test_stem_pool_off_doubles_stage_resolution_with_the_same_parameters():
    torch.manual_seed(0)
    pooled = ThermalSlowFastForVideoClassification(_native_config(stem_pool=True)).eval()
    unpooled = ThermalSlowFastForVideoClassification(_native_config(stem_pool=False)).eval()
    assert _num_params(pooled) == _num_params(unpooled)
    assert pooled.state_dict().keys() == unpooled.state_dict().keys()
    assert all(isinstance(s.pool, nn.MaxPool3d) for s in pooled.slowfast.blocks[0].multipathway_blocks)
    assert all(s.pool is None for s in unpooled.slowfast.blocks[0].multipathway_blocks)

    shapes = {}

    def recorder(name):
        def hook(module, inputs, outputs):
            shapes[name] = [tuple(o.shape) for o in outputs]  # returns None: the output is not replaced

        return hook

    clip = torch.rand(2, 8, 40, 60)  # the sensor's native 40 x 60, no resize (image_size == clip size)
    for name, model in (("pool", pooled), ("nopool", unpooled)):
        handle = model.slowfast.blocks[1].register_forward_hook(recorder(name))
        with torch.no_grad():
            logits = model(clip).logits
        handle.remove()
        assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    for (slow_p, fast_p), (slow_n, fast_n) in [(shapes["pool"], shapes["nopool"])]:
        assert slow_n[-2:] == (2 * slow_p[-2], 2 * slow_p[-1])
        assert fast_n[-2:] == (2 * fast_p[-2], 2 * fast_p[-1])
        assert slow_n[:3] == slow_p[:3] and fast_n[:3] == fast_p[:3]  # batch, channels, time unchanged
    assert shapes["nopool"][0][-2:] == (20, 30) and shapes["pool"][0][-2:] == (10, 15)


def test_native_resolution_model_trains_a_step():
    torch.manual_seed(0)
    model = ThermalSlowFastForVideoClassification(_native_config(stem_width=8, stem_pool=False))
    assert model.slowfast.blocks[0].multipathway_blocks[1].conv.out_channels == 1
    clip, labels = torch.rand(2, 8, 40, 60), torch.tensor([0, 2])
    assert [tuple(p.shape[-2:]) for p in model.pack_pathways(clip)] == [(40, 60), (40, 60)]
    out = model(clip, labels=labels)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    stem = model.slowfast.blocks[0].multipathway_blocks[0].conv.weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [dict(stem_width=12), dict(stem_width=16, slowfast_channel_ratio=3)])
def test_stem_width_not_divisible_by_channel_ratio_raises(kwargs):
    with pytest.raises(ValueError, match="stem_width"):
        ThermalSlowFastConfig(model_depth=18, **kwargs)


def test_stem_fields_survive_save_load(tmp_path):
    torch.manual_seed(0)
    model = ThermalSlowFastForVideoClassification(_native_config(stem_width=16, stem_pool=False)).eval()
    model.save_pretrained(tmp_path)
    config = ThermalSlowFastConfig.from_pretrained(tmp_path)
    assert config.stem_width == 16 and config.stem_pool is False
    assert json.loads((tmp_path / "config.json").read_text())["stem_pool"] is False
    loaded = ThermalSlowFastForVideoClassification.from_pretrained(tmp_path).eval()
    assert loaded.slowfast.blocks[0].multipathway_blocks[0].conv.out_channels == 16
    assert loaded.slowfast.blocks[0].multipathway_blocks[0].pool is None
    clip = torch.rand(1, 8, 40, 60)
    with torch.no_grad():
        assert torch.equal(loaded(clip).logits, model(clip).logits)


# ---------------------------------------------------------------------------------------------------------------
# 4. class weights: inverse_sqrt_frequency
# ---------------------------------------------------------------------------------------------------------------
def test_inverse_sqrt_frequency_weights():
    counts = np.array([9, 4, 0, 1])
    with pytest.warns(UserWarning, match="weight 0"):
        weights = class_weights(counts, method="inverse_sqrt_frequency")
    assert weights.dtype == np.float32
    # raw 1/sqrt(n): 1/3, 1/2, -, 1; sum(raw * n) = 3 + 2 + 1 = 6, N = 14
    np.testing.assert_allclose(weights, [14 / 18, 14 / 12, 0.0, 14 / 6], rtol=1e-6)
    assert float((weights * counts).sum()) == pytest.approx(counts.sum(), rel=1e-6)
    assert weights[3] / weights[0] == pytest.approx(3.0, rel=1e-6)  # sqrt(9 / 1), not 9
    # milder than inverse frequency
    inverse = class_weights(counts[counts > 0], method="inverse_frequency")
    sqrt = class_weights(counts[counts > 0], method="inverse_sqrt_frequency")
    assert sqrt.max() / sqrt.min() < inverse.max() / inverse.min()
    # balanced counts: all ones
    np.testing.assert_allclose(class_weights([5, 5, 5], method="inverse_sqrt_frequency"), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# 5. loss: logit offsets, coarse term, trainer wiring
# ---------------------------------------------------------------------------------------------------------------
def test_logit_offsets_equal_the_loss_on_shifted_logits():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    offsets = torch.tensor([-0.3, -1.2, -2.5, 0.0])
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    for kwargs in (dict(), dict(class_weights=weights, label_smoothing=0.1), dict(focal_gamma=2.0)):
        got = classification_loss(logits, labels, logit_offsets=offsets, **kwargs)
        ref = classification_loss(logits + offsets, labels, **kwargs)
        for a, b in zip(got, ref):
            assert torch.allclose(a, b, atol=1e-6)
    weighted, w = classification_loss(logits, labels, logit_offsets=offsets)
    assert torch.allclose(weighted, F.cross_entropy(logits + offsets, labels, reduction="none"), atol=1e-6)
    assert not torch.allclose(weighted, classification_loss(logits, labels)[0])


def test_coarse_weight_adds_the_group_cross_entropy():
    torch.manual_seed(1)
    logits, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 2])
    fine_to_coarse = torch.tensor([0, 1, 1, 2])  # HIERARCHY's groups
    probs = torch.softmax(logits, -1)
    group_prob = torch.stack([probs[:, 0], probs[:, 1] + probs[:, 2], probs[:, 3]], dim=1)
    coarse_labels = fine_to_coarse[labels]
    fine = F.cross_entropy(logits, labels, reduction="none")
    for w in (0.5, 2.0):
        weighted, item_weights = classification_loss(logits, labels, fine_to_coarse=fine_to_coarse, coarse_weight=w)
        by_hand = fine + w * -torch.log(group_prob[torch.arange(5), coarse_labels])
        assert torch.allclose(weighted, by_hand, atol=1e-5)
        assert torch.equal(item_weights, torch.ones(5))
    # weight 0 (or no grouping): the plain loss
    plain = classification_loss(logits, labels)[0]
    assert torch.allclose(classification_loss(logits, labels, fine_to_coarse=fine_to_coarse, coarse_weight=0.0)[0], plain)
    # a singleton group's coarse term equals its fine one: item 0 (standing) gets exactly (1 + w) x its loss
    weighted, _ = classification_loss(logits, labels, fine_to_coarse=fine_to_coarse, coarse_weight=1.0)
    assert weighted[0].item() == pytest.approx(2 * fine[0].item(), rel=1e-5)
    # soft targets: group mass summed
    soft = torch.tensor([[0.0, 0.5, 0.5, 0.0]] * 5)
    weighted, _ = classification_loss(logits, soft, fine_to_coarse=fine_to_coarse, coarse_weight=1.0)
    fine_soft = -(soft * torch.log_softmax(logits, -1)).sum(-1)
    assert torch.allclose(weighted, fine_soft - torch.log(group_prob[:, 1]), atol=1e-5)


class _ToyClassifier(nn.Module):
    def __init__(self, num_labels=3, label_names=None):
        super().__init__()
        kwargs = {} if label_names is None else dict(id2label=dict(enumerate(label_names)),
                                                     label2id={n: i for i, n in enumerate(label_names)})
        self.config = PreTrainedConfig(num_labels=num_labels, **kwargs)
        self.head = nn.Linear(24, num_labels)

    def forward(self, pixel_values, labels=None):
        return ImageClassifierOutput(logits=self.head(pixel_values.flatten(1)))


class _ToyClips(torch.utils.data.Dataset):
    def __init__(self, labels, num_labels):
        self.labels, self.num_labels = np.asarray(labels), num_labels
        self.clips = torch.randn(len(labels), 2, 3, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"pixel_values": self.clips[i], "labels": int(self.labels[i])}

    def class_counts(self, num_labels):
        return np.bincount(self.labels, minlength=num_labels)


def _trainer(tmp_path, model, dataset, **overrides):
    kwargs = dict(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", save_strategy="no",
                  eval_strategy="no", do_eval=False, disable_tqdm=True, seed=0, per_device_train_batch_size=4)
    kwargs.update(overrides)
    return ThermalTrainer(model=model, args=ThermalTrainingArguments(**kwargs), train_dataset=dataset,
                          data_collator=collate_clips)


def test_trainer_logit_adjustment_offsets_and_loss(tmp_path):
    dataset = _ToyClips([0, 0, 1, 0, 0, 1], num_labels=3)  # counts 4, 2, 0
    trainer = _trainer(tmp_path, _ToyClassifier(), dataset, logit_adjustment_tau=1.5)
    expected = torch.tensor([1.5 * math.log(4 / 6), 1.5 * math.log(2 / 6), 0.0])
    assert trainer.logit_offsets is not None
    assert torch.allclose(trainer.logit_offsets, expected, atol=1e-6)
    assert trainer.logit_offsets[2] == 0.0  # absent class: no margin, no -inf
    batch = collate_clips([dataset[i] for i in range(4)])
    model = trainer.model
    loss = trainer.compute_loss(model, batch)
    with torch.no_grad():
        logits = model(batch["pixel_values"]).logits
    assert loss.item() == pytest.approx(F.cross_entropy(logits + expected, batch["labels"]).item(), rel=1e-5)
    # off by default
    assert _trainer(tmp_path, _ToyClassifier(), dataset).logit_offsets is None


def test_trainer_coarse_loss(tmp_path):
    dataset = _ToyClips([0, 1, 2, 3], num_labels=4)
    # class names without a dash: the first loss computation says so
    trainer = _trainer(tmp_path, _ToyClassifier(num_labels=4, label_names=["a", "b", "c", "d"]), dataset,
                       coarse_loss_weight=0.5)
    batch = collate_clips([dataset[i] for i in range(4)])
    with pytest.raises(ValueError, match="coarse_loss_weight"):
        trainer.compute_loss(trainer.model, batch)
    # the default LABEL_i names have no dash either
    trainer = _trainer(tmp_path, _ToyClassifier(num_labels=4), dataset, coarse_loss_weight=0.5)
    with pytest.raises(ValueError, match="dash"):
        trainer.compute_loss(trainer.model, batch)
    # two-level names: the loss is the fine one plus 0.5 x the group's
    trainer = _trainer(tmp_path, _ToyClassifier(num_labels=4, label_names=HIERARCHY), dataset, coarse_loss_weight=0.5)
    loss = trainer.compute_loss(trainer.model, batch)
    with torch.no_grad():
        logits = trainer.model(batch["pixel_values"]).logits
    probs = torch.softmax(logits, -1)
    group = torch.stack([probs[:, 0], probs[:, 1] + probs[:, 2], probs[:, 3]], 1)
    coarse = torch.tensor([0, 1, 1, 2])
    by_hand = F.cross_entropy(logits, batch["labels"]) - 0.5 * torch.log(group[torch.arange(4), coarse]).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# 6. metrics: coarse groups
# ---------------------------------------------------------------------------------------------------------------
def test_coarse_groups():
    assert coarse_groups(["sitting", "standing", "walking"]) is None
    assert coarse_groups(["LABEL_0", "LABEL_1"]) is None
    names, index = coarse_groups(HIERARCHY + ["lower position-kneeling", "other"])
    assert names == ["standing", "lying down", "sitting", "lower position", "other"]
    assert index.tolist() == [0, 1, 1, 2, 3, 4]
    # the real category list
    from thermal_hf.data.categories import DEFAULT_CATEGORY_NAMES

    names, index = coarse_groups(DEFAULT_CATEGORY_NAMES)
    by_name = dict(zip(DEFAULT_CATEGORY_NAMES, index.tolist()))
    assert by_name["lying down-lying with risk"] == by_name["lying down-lying on the bed/couch"]
    assert names[by_name["lying down-lying with risk"]] == "lying down"
    assert names[by_name["transition-normal transition"]] == "transition"
    assert len({by_name["sitting"], by_name["standing"], by_name["walking"], by_name["other"]}) == 4
    assert len(names) == 8  # sitting standing walking lying-down leaning transition lower-position other


def test_coarse_metrics_right_group_wrong_class():
    # fine prediction 2 (bed) for label 1 (risk): fine wrong, coarse "lying down" right
    scores = np.array([[0.1, 0.3, 0.4, 0.2], [0.05, 0.45, 0.5, 0.0]])
    m = compute_classification_metrics(scores, np.array([1, 2]), 4, HIERARCHY)
    assert m["accuracy"] == 0.5 and m["coarse_accuracy"] == 1.0
    m = compute_classification_metrics(scores[:1], np.array([1]), 4, HIERARCHY)
    assert m["accuracy"] == 0.0 and m["coarse_accuracy"] == 1.0
    assert m["coarse_label_names"] == ["standing", "lying down", "sitting"]
    assert m["coarse_confusion_matrix"] == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    # logits of the same probabilities (shifted): softmax first, same coarse answer
    logits = np.log(np.array([[0.1, 0.3, 0.4, 0.2]])) + 5.0
    m_logits = compute_classification_metrics(logits, np.array([1]), 4, HIERARCHY)
    assert m_logits["accuracy"] == 0.0 and m_logits["coarse_accuracy"] == 1.0
    # flat names: no coarse keys
    flat = compute_classification_metrics(scores, np.array([1, 2]), 4, list("abcd"))
    assert not any(k.startswith("coarse") for k in flat)


def test_clip_median_is_the_room_temperature():
    # a room at 18 C with sensor noise and a 30 C person covering 6 % of the view: the subsampled median is the
    # room's to a few hundredths of a degree, and equals the full median's value closely
    rng = np.random.default_rng(0)
    clip = (18.0 + rng.normal(0, 0.3, (64, 40, 60))).astype(np.float32)
    clip[:, 10:22, 20:32] = 30.0
    assert abs(float(transforms.clip_median(clip)) - 18.0) < 0.1
    assert abs(float(transforms.clip_median(clip)) - float(np.median(clip))) < 0.05


def test_coarse_answer_is_the_group_of_the_fine_answer():
    names = HIERARCHY
    # fine argmax is "standing" (0.4); the two lying-down classes sum to 0.6, but the coarse answer stays the
    # group of the model's answer (group scores are each group's best class, not the sum)
    scores = np.array([[0.4, 0.35, 0.25, 0.0]])
    m = compute_classification_metrics(scores, np.array([0]), 4, names)
    assert m["accuracy"] == 1.0 and m["coarse_accuracy"] == 1.0
    assert m["coarse_confusion_matrix"][0] == [1, 0, 0]
    np.testing.assert_allclose(coarse_scores(scores, np.array([0, 1, 1, 2]), 3), [[0.4, 0.35, 0.0]])
    # three clips: coarse labels [1, 0, 2], coarse predictions [1, 1, 2]
    scores = np.array([[0.1, 0.3, 0.4, 0.2], [0.3, 0.45, 0.25, 0.0], [0.0, 0.1, 0.0, 0.9]])
    labels = np.array([1, 0, 3])
    m = compute_classification_metrics(scores, labels, 4, names)
    assert m["accuracy"] == pytest.approx(1 / 3)  # clip 2
    assert m["coarse_accuracy"] == pytest.approx(2 / 3)  # clips 0 and 2
    assert m["coarse_mean_class_accuracy"] == pytest.approx((0 + 1 + 1) / 3)
    assert m["coarse_macro_f1"] == pytest.approx((0 + 2 / 3 + 1) / 3)
    assert m["coarse_per_class"]["lying down"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1,
                                                                 "predicted": 2})
    assert m["coarse_per_class"]["standing"]["support"] == 1 and m["coarse_per_class"]["standing"]["recall"] == 0.0
    assert set(m["coarse_per_class"]) == {"standing", "lying down", "sitting"}


def test_classification_metrics_logs_coarse_keys_only_for_hierarchies():
    scores = np.array([[0.1, 0.3, 0.4, 0.2], [0.7, 0.1, 0.1, 0.1]], dtype=np.float32)
    labels = np.array([1, 0])
    compute = make_compute_metrics(HIERARCHY)
    logged = compute(EvalPrediction(predictions=(scores,), label_ids=labels))
    assert set(logged) == set(SCALAR_KEYS) | set(COARSE_SCALAR_KEYS)
    assert logged["accuracy"] == 0.5 and logged["coarse_accuracy"] == 1.0
    assert all(isinstance(v, float) for v in logged.values())
    np.testing.assert_array_equal(compute.last_scores, scores)
    assert compute.last_labels.tolist() == [1, 0]
    assert "coarse_per_class" in compute.last_report and "coarse_per_class" not in logged
    flat = make_compute_metrics(list("abcd"))
    assert set(flat(EvalPrediction(predictions=scores, label_ids=labels))) == set(SCALAR_KEYS)


def test_to_probabilities():
    probs = np.array([[0.2, 0.8], [1.0, 0.0]])
    np.testing.assert_array_equal(to_probabilities(probs), probs)
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(to_probabilities(logits), expected, rtol=1e-12)
    # one negative entry makes the whole array logits
    mixed = np.array([[0.5, 0.5], [-1.0, 2.0]])
    out = to_probabilities(mixed)
    np.testing.assert_allclose(out[0], [0.5, 0.5])
    np.testing.assert_allclose(out.sum(1), 1.0)
    np.testing.assert_allclose(out[1], torch.softmax(torch.tensor([-1.0, 2.0], dtype=torch.float64), 0).numpy())
    # large logits do not overflow
    assert np.isfinite(to_probabilities(np.array([[1000.0, 0.0]]))).all()


# ---------------------------------------------------------------------------------------------------------------
# 7. recipe keys
# ---------------------------------------------------------------------------------------------------------------
def _parse(tmp_path, *cli, extra: str = ""):
    from thermal_hf.parser import parse_recipe

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(extra + "\n" + TINY.read_text())
    return parse_recipe([str(recipe), "--output_dir", str(tmp_path / "out"), *cli])


def test_recipe_eval_recordings(tmp_path):
    _, data, _ = _parse(tmp_path, extra="eval_recordings: SL14_R4\n").as_tuple()
    assert data.eval_recordings == ["SL14_R4"]
    _, data, _ = _parse(tmp_path, "--eval_recordings", "SL14_R4", "SL18_R4").as_tuple()
    assert data.eval_recordings == ["SL14_R4", "SL18_R4"]
    _, data, _ = _parse(tmp_path).as_tuple()
    assert data.eval_recordings is None
    with pytest.raises(RecipeError, match="eval_recordings"):
        _parse(tmp_path, extra="eval_recordings: []\n")


@pytest.mark.parametrize("key", ["logit_adjustment_tau", "coarse_loss_weight"])
def test_recipe_negative_loss_keys_raise(tmp_path, key):
    _, _, train = _parse(tmp_path, f"--{key}", "0.5").as_tuple()
    assert getattr(train, key) == 0.5
    with pytest.raises(RecipeError, match=key):
        _parse(tmp_path, f"--{key}", "-1")


def test_recipe_class_weighting_and_temperature_reference(tmp_path):
    from thermal_hf.train import build_processor

    model, data, train = _parse(tmp_path, "--class_weighting", "inverse_sqrt_frequency",
                                "--temperature_reference", "clip_median", "--temperature_range", "-4", "12").as_tuple()
    assert train.class_weighting == "inverse_sqrt_frequency"
    assert model.temperature_reference == "clip_median" and model.temperature_range == (-4.0, 12.0)
    processor = build_processor(model, data, None)
    assert processor.temperature_reference == "clip_median" and processor.temperature_range == (-4.0, 12.0)
    model, data, _ = _parse(tmp_path).as_tuple()
    assert model.temperature_reference is None
    assert build_processor(model, data, None).temperature_reference == "absolute"
    with pytest.raises(RecipeError, match="temperature_reference"):
        _parse(tmp_path, "--temperature_reference", "median")
    with pytest.raises(RecipeError, match="class_weighting"):
        _parse(tmp_path, "--class_weighting", "sqrt")


def test_recipe_vertical_flip_reaches_the_augmentation(tmp_path):
    _, data, _ = _parse(tmp_path, "--vertical_flip_prob", "0.5").as_tuple()
    assert data.augmentation_config().vertical_flip_prob == 0.5 and data.augmentation_config().enabled
    assert _parse(tmp_path).as_tuple()[1].augmentation_config().vertical_flip_prob == 0.0
    with pytest.raises(RecipeError, match="vertical_flip_prob"):
        _parse(tmp_path, "--vertical_flip_prob", "1.5")


def test_recipe_stem_keys_reach_the_config(tmp_path):
    model, _, _ = _parse(tmp_path, "--stem_width", "16", "--stem_pool", "false").as_tuple()
    overrides = model.config_overrides()
    assert overrides["stem_width"] == 16 and overrides["stem_pool"] is False
    config = ThermalSlowFastConfig(**overrides)
    assert config.stem_width == 16 and config.stem_pool is False
    model, _, _ = _parse(tmp_path, extra="stem_width: 32\nstem_pool: true\n").as_tuple()
    assert model.config_overrides()["stem_width"] == 32 and model.config_overrides()["stem_pool"] is True
    model, _, _ = _parse(tmp_path).as_tuple()
    assert "stem_width" not in model.config_overrides() and "stem_pool" not in model.config_overrides()


# ---------------------------------------------------------------------------------------------------------------
# 8. held-out recordings, eval predictions
# ---------------------------------------------------------------------------------------------------------------
def _recording_dataset():
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"recording": Value("string"), "image_id": Value("int64"), "label": ClassLabel(names=["a", "b"])})

    def split(recordings, first_id):
        return Dataset.from_dict(
            {"recording": recordings, "image_id": list(range(first_id, first_id + len(recordings))),
             "label": [i % 2 for i in range(len(recordings))]},
            features=features,
        )

    return DatasetDict({
        "train": split(["A", "A", "B", "C", "C", "C"], 0),
        "validation": split(["B", "D"], 100),
        "test": split(["E", "A"], 200),
    })


def test_split_by_recordings():
    from thermal_hf.train import split_by_recordings

    dataset = _recording_dataset()
    train, evaluation = split_by_recordings(dataset, ["B", "D"], "/data/ds")
    assert sorted(evaluation["image_id"]) == [2, 100, 101]
    assert set(evaluation["recording"]) == {"B", "D"}
    assert set(train["recording"]) == {"A", "C", "E"}
    assert not set(train["recording"]) & set(evaluation["recording"])
    total = sum(len(dataset[s]) for s in dataset)
    assert len(train) + len(evaluation) == total
    all_ids = sorted(i for s in dataset for i in dataset[s]["image_id"])
    assert sorted(list(train["image_id"]) + list(evaluation["image_id"])) == all_ids
    assert train.features == dataset["train"].features  # labels keep their names
    # one recording, present in several splits
    train, evaluation = split_by_recordings(dataset, ["A"], "/data/ds")
    assert sorted(evaluation["image_id"]) == [0, 1, 201] and "A" not in set(train["recording"])


def test_split_by_recordings_errors():
    from thermal_hf.train import split_by_recordings

    dataset = _recording_dataset()
    with pytest.raises(RecipeError) as err:
        split_by_recordings(dataset, ["B", "SL99_R9"], "/data/ds")
    message = str(err.value)
    assert "SL99_R9" in message and "eval_recordings" in message
    assert "A, B, C, D, E" in message  # the known ones are listed
    with pytest.raises(RecipeError, match="every recording"):
        split_by_recordings(dataset, ["A", "B", "C", "D", "E"], "/data/ds")


def test_write_eval_predictions(tmp_path):
    from datasets import Dataset

    from thermal_hf.train import write_eval_predictions

    eval_split = Dataset.from_dict({
        "recording": ["SL1_R1", "SL1_R1", "SL2_R3"], "image_id": [10, 11, 40], "keyframe_index": [5, 9, 120],
        "object_id": [1, 1, 2], "label": [0, 2, 1], "frames": [[0.0], [1.0], [2.0]],
    })
    scores = np.array([[0.1234567891, -1.0, 2.0], [0.0, 0.5, -0.5], [3.0, 2.0, 1.0]], dtype=np.float32)
    fake = SimpleNamespace(last_scores=scores, last_labels=np.array([0, 2, 1]))
    path = tmp_path / "eval_predictions.json"
    write_eval_predictions(path, fake, eval_split, ["x", "y", "z"])
    written = json.loads(path.read_text())
    assert written["label_names"] == ["x", "y", "z"]
    assert written["labels"] == [0, 2, 1]
    np.testing.assert_allclose(written["logits"], scores, atol=1e-6)
    assert written["recording"] == ["SL1_R1", "SL1_R1", "SL2_R3"]
    assert written["image_id"] == [10, 11, 40]
    assert written["keyframe_index"] == [5, 9, 120]
    assert written["object_id"] == [1, 1, 2]
    assert "frames" not in written
    # people voted into keyframes: one row per keyframe, with its first person's provenance and no object_id
    voted = SimpleNamespace(last_scores=scores[:2], last_labels=np.array([0, 1]), last_rows=np.array([0, 2]),
                            keyframe_groups=np.array([0, 0, 1]))
    write_eval_predictions(path, voted, eval_split, ["x", "y", "z"])
    written = json.loads(path.read_text())
    assert written["labels"] == [0, 1] and written["recording"] == ["SL1_R1", "SL2_R3"]
    assert written["image_id"] == [10, 40] and "object_id" not in written
    # nothing evaluated, or scores of another split: no file
    other = tmp_path / "none.json"
    write_eval_predictions(other, SimpleNamespace(last_scores=None, last_labels=None), eval_split, ["x", "y", "z"])
    write_eval_predictions(other, SimpleNamespace(last_scores=scores[:2], last_labels=np.array([0, 2])), eval_split,
                           ["x", "y", "z"])
    assert not other.exists()


def test_model_card_names_held_out_recordings():
    from thermal_hf.hub import _split_protocol

    text = _split_protocol({}, {"eval_recordings": ["SL14_R4", "SL18_R4"], "split_by": "annotations"})
    assert "`SL14_R4`, `SL18_R4`" in text and "never seen" in text
    assert "memorisation" in _split_protocol({}, {"split_by": "annotations"})


@pytest.mark.parametrize("size_in,size_out", [((30, 45), (40, 60)), ((40, 60), (40, 60)), ((17, 52), (40, 60)), ((40, 60), (20, 30))])
def test_resize_matches_torch_bilinear(size_in, size_out):
    # the crop augmentation's resize (matrix products) must equal torch's bilinear, half-pixel-centre resize
    clip = np.random.default_rng(1).uniform(10, 40, (5, *size_in)).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(clip)[:, None], size=size_out, mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(transforms._resize(clip, *size_out), expected.numpy(), atol=1e-4)


def test_flips_folded_into_the_crop_equal_flipping_the_cropped_clip():
    clip = np.random.default_rng(3).normal(20.0, 3.0, (8, 40, 60)).astype(np.float32)
    crop = dict(random_resized_crop_scale=(0.4, 0.8))
    for flips, axes in ((dict(horizontal_flip_prob=1.0), (2,)), (dict(vertical_flip_prob=1.0), (1,)),
                        (dict(horizontal_flip_prob=1.0, vertical_flip_prob=1.0), (1, 2))):
        for seed in range(5):
            flipped, _ = transforms.augment(clip, None, transforms.AugmentationConfig(**crop, **flips),
                                            np.random.default_rng(seed))
            plain, _ = transforms.augment(clip, None, transforms.AugmentationConfig(**crop), np.random.default_rng(seed))
            np.testing.assert_allclose(flipped, np.flip(plain, axes), rtol=0, atol=1e-5)


@pytest.mark.parametrize("config", [
    {}, {"horizontal_flip_prob": 1.0}, {"vertical_flip_prob": 1.0, "temperature_gain": 0.2},
    {"temporal_jitter": 3}, {"random_resized_crop_scale": (0.5, 0.9), "random_erasing_prob": 1.0},
])
def test_augment_returns_a_fresh_contiguous_array_and_leaves_the_input_alone(config):
    clip = np.random.default_rng(4).normal(20.0, 3.0, (8, 40, 60)).astype(np.float32)
    before = clip.copy()
    out, _ = transforms.augment(clip, None, transforms.AugmentationConfig(**config), np.random.default_rng(0))
    assert out.flags.c_contiguous and out.dtype == np.float32 and out.shape == clip.shape
    assert not np.shares_memory(out, clip)
    np.testing.assert_array_equal(clip, before)
    out += 1.0  # writing to the output must not reach the caller's clip
    np.testing.assert_array_equal(clip, before)
