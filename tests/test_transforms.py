"""Thermal transforms: invalid-pixel repair, normalisation, seeded augmentations, mixup/cutmix."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from thermal_hf.data.transforms import (
    AugmentationConfig,
    augment,
    invalid_mask,
    mixup_cutmix,
    normalize,
    repair_invalid,
)

INVALID = np.float32(-273.2)


def _clip(num_frames: int = 16, height: int = 40, width: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = rng.normal(17.0, 0.5, size=(num_frames, height, width)).astype(np.float32)
    clip[:, 10:20, 20:30] += 14.0  # a warm person
    return clip


def _reference_repair(frames: np.ndarray, floor: float = -50.0) -> np.ndarray:
    """Slow, obviously-correct per-pixel implementation of the documented repair rule."""
    mask = invalid_mask(frames, floor)
    out = frames.astype(np.float32).copy()
    num_frames = len(frames)
    for t, y, x in zip(*np.nonzero(mask)):
        value = None
        for distance in range(1, num_frames):
            for source in (t - distance, t + distance):
                if 0 <= source < num_frames and not mask[source, y, x]:
                    value = frames[source, y, x]
                    break
            if value is not None:
                break
        if value is None:
            valid = frames[t][~mask[t]]
            value = np.median(valid) if valid.size else (np.median(frames[~mask]) if (~mask).any() else 17.0)
        out[t, y, x] = value
    return out


def test_invalid_mask_detects_floor_nan_inf():
    frames = np.array([[[17.0, -273.2, np.nan], [np.inf, -np.inf, -49.9]]], dtype=np.float32)
    assert invalid_mask(frames).tolist() == [[[False, True, True], [True, True, False]]]
    assert invalid_mask(frames, floor=-40.0)[0, 1, 2]


def test_repair_takes_same_pixel_from_nearest_valid_frame():
    clip = _clip(8)
    raw = clip.copy()
    clip[3, 30:, :] = INVALID  # a dropped-packet tile: the tail of the frame in raster order
    clip[4, 30:, :] = INVALID
    clip[5, 35:, :] = INVALID
    repaired = repair_invalid(clip)
    assert repaired.dtype == np.float32 and repaired.shape == clip.shape
    assert repaired.min() > -50.0
    np.testing.assert_array_equal(repaired[3, 30:], raw[2, 30:])  # frame 2 is nearest (distance 1)
    np.testing.assert_array_equal(repaired[4, 30:35], raw[5, 30:35])  # frame 5 is valid there: distance 1 later
    # rows 35: of frame 4 are invalid in frames 3..5: the tie between frame 2 and frame 6 goes to the earlier one
    np.testing.assert_array_equal(repaired[4, 35:], raw[2, 35:])
    np.testing.assert_array_equal(repaired[5, 35:], raw[6, 35:])
    np.testing.assert_array_equal(repaired[~invalid_mask(clip)], clip[~invalid_mask(clip)])  # valid untouched
    assert clip.min() == INVALID  # input not modified


def test_repair_matches_reference_on_random_masks():
    rng = np.random.default_rng(1)
    for trial in range(20):
        clip = rng.normal(17, 3, size=(10, 4, 5)).astype(np.float32)
        mask = rng.random(clip.shape) < rng.uniform(0.0, 0.9)
        clip[mask] = rng.choice(np.array([-273.2, np.nan, np.inf], dtype=np.float32), size=int(mask.sum()))
        if trial % 4 == 0:
            clip[2] = INVALID  # an all-invalid frame
        np.testing.assert_allclose(repair_invalid(clip), _reference_repair(clip))


def test_repair_falls_back_to_frame_median_then_background():
    clip = _clip(4, 6, 6)
    clip[:, 0, 0] = INVALID  # invalid in every frame -> frame's valid median
    repaired = repair_invalid(clip)
    for t in range(4):
        assert repaired[t, 0, 0] == pytest.approx(np.median(clip[t][~invalid_mask(clip[t])]))
    assert np.all(repair_invalid(np.full((3, 4, 4), INVALID)) == 17.0)
    assert repair_invalid(clip[0]).shape == (6, 6)  # a single frame
    assert repair_invalid(np.stack([clip, clip])).shape == (2, 4, 6, 6)  # a batch


def test_repair_is_fast_on_a_real_sized_window():
    clip = _clip(64)
    clip[::7, 25:, :] = INVALID
    repair_invalid(clip)
    start = time.perf_counter()
    for _ in range(20):
        repair_invalid(clip)
    assert (time.perf_counter() - start) / 20 < 0.02  # ~0.4 ms measured; generous for busy CI machines


def test_normalize_range_and_standardisation():
    clip = np.array([[[-10.0, 5.0, 25.0, 45.0, 60.0]]], dtype=np.float32)
    out = normalize(clip)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(normalize(clip, temperature_range=(15.0, 35.0))[0, 0], [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(normalize(clip, mean=0.5, std=0.25)[0, 0], [-2.0, -2.0, 0.0, 2.0, 2.0])
    with pytest.raises(ValueError):
        normalize(clip, temperature_range=(10.0, 10.0))
    with pytest.raises(ValueError):
        normalize(clip, mean=0.5)


def test_default_config_is_identity():
    clip = _clip()
    bbox = np.array([0.4, 0.375, 0.1667, 0.25], dtype=np.float32)
    out, box = augment(clip, bbox, AugmentationConfig(), np.random.default_rng(0))
    np.testing.assert_array_equal(out, clip)
    np.testing.assert_array_equal(box, bbox)
    assert not AugmentationConfig().enabled


def test_horizontal_flip_moves_bbox():
    clip = _clip()
    bbox = np.array([25 / 60, 15 / 40, 10 / 60, 10 / 40], dtype=np.float32)  # the warm square at [10:20, 20:30]
    out, box = augment(clip, bbox, AugmentationConfig(horizontal_flip_prob=1.0), np.random.default_rng(0))
    np.testing.assert_array_equal(out, clip[:, :, ::-1])
    np.testing.assert_allclose(box, [35 / 60, 15 / 40, 10 / 60, 10 / 40], rtol=1e-6)
    # The warm blob really is where the box says it is.
    warm_cols = np.nonzero(out[0].mean(axis=0) > 20.0)[0]
    assert abs((warm_cols.mean() + 0.5) / 60 - box[0]) < 0.02


def test_crop_keeps_shape_and_box_follows_person():
    clip = _clip()
    bbox = np.array([25 / 60, 15 / 40, 10 / 60, 10 / 40], dtype=np.float32)  # the warm square at [10:20, 20:30]
    config = AugmentationConfig(random_resized_crop_scale=(0.5, 0.7))
    for seed in range(10):
        out, box = augment(clip, bbox, config, np.random.default_rng(seed))
        assert out.shape == clip.shape and out.dtype == np.float32
        assert np.all((box >= 0) & (box <= 1))
        if box[2] > 0.05 and box[3] > 0.05:  # person still in view: its centre is warm
            cy, cx = int(box[1] * 40), int(box[0] * 60)
            assert out[0, cy, cx] > 24.0


def test_crop_box_clipped_when_person_leaves_crop():
    clip = _clip()
    bbox = np.array([0.02, 0.5, 0.04, 0.1], dtype=np.float32)
    config = AugmentationConfig(random_resized_crop_scale=(0.3, 0.3))
    for seed in range(10):
        _, box = augment(clip, bbox, config, np.random.default_rng(seed))
        assert np.all((box >= 0) & (box <= 1)) and box[0] - box[2] / 2 >= -1e-6


FULL = AugmentationConfig(
    random_resized_crop_scale=(0.7, 1.0),
    horizontal_flip_prob=0.5,
    temperature_offset=1.5,
    temperature_gain=0.1,
    sensor_noise_std=0.2,
    random_erasing_prob=0.5,
    temporal_jitter=4,
)


def test_augment_is_seeded_and_preserves_shape_dtype():
    clip = _clip(16)
    bbox = np.array([0.4, 0.4, 0.2, 0.2], dtype=np.float32)
    a = augment(clip, bbox, FULL, np.random.default_rng(7))
    b = augment(clip, bbox, FULL, np.random.default_rng(7))
    c = augment(clip, bbox, FULL, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == clip.shape and a[0].dtype == np.float32 and a[1].dtype == np.float32
    out, box = augment(clip, None, FULL, np.random.default_rng(0))
    assert box is None and out.shape == clip.shape
    np.testing.assert_array_equal(clip, _clip(16))  # input untouched


def test_temporal_jitter_repeats_edge_frames():
    clip = np.arange(8, dtype=np.float32)[:, None, None] * np.ones((8, 2, 3), np.float32)
    seen = set()
    for seed in range(30):
        out, _ = augment(clip, None, AugmentationConfig(temporal_jitter=3), np.random.default_rng(seed))
        firsts = out[:, 0, 0]
        shift = int(firsts[3] - 3)
        assert -3 <= shift <= 3
        np.testing.assert_array_equal(firsts, np.clip(np.arange(8) + shift, 0, 7))
        seen.add(shift)
    assert len(seen) > 3


def test_random_erasing_fills_background_and_temperature_jitter_in_degrees():
    clip = _clip()
    out, _ = augment(clip, None, AugmentationConfig(random_erasing_prob=1.0), np.random.default_rng(0))
    changed = out != clip
    assert changed.any()
    erased = out[0][changed[0]]
    assert np.allclose(erased, erased[0]) and 15.0 < erased[0] < 19.0  # background, not 0 or a cold hole
    out, _ = augment(clip, None, AugmentationConfig(temperature_offset=2.0), np.random.default_rng(0))
    shift = (out - clip).mean()
    assert 0 < abs(shift) <= 2.0 and np.allclose(out - clip, shift, atol=1e-4)


@pytest.mark.parametrize("mixup_alpha,cutmix_alpha", [(0.0, 0.0), (0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixup_cutmix_soft_targets_sum_to_one(mixup_alpha, cutmix_alpha):
    pixel_values = torch.rand(6, 4, 8, 12)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    mixed, targets = mixup_cutmix(pixel_values, labels, 14, mixup_alpha, cutmix_alpha, torch.Generator().manual_seed(0))
    assert mixed.shape == pixel_values.shape and targets.shape == (6, 14)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(6))
    assert (targets >= 0).all()
    again = mixup_cutmix(pixel_values, labels, 14, mixup_alpha, cutmix_alpha, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed, again[0])
    torch.testing.assert_close(targets, again[1])
    if mixup_alpha == cutmix_alpha == 0.0:
        torch.testing.assert_close(mixed, pixel_values)
        torch.testing.assert_close(targets, torch.nn.functional.one_hot(labels, 14).float())
