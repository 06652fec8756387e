"""The person-blob features of `bench/exp_rare_class_probes.py` (an experiment script, checked so it cannot rot)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def probes():
    spec = importlib.util.spec_from_file_location("exp_rare_class_probes", Path(__file__).resolve().parents[1] / "bench" / "exp_rare_class_probes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blob_row_measures_the_largest_warm_blob(probes):
    difference = np.zeros((40, 60), np.float32)
    difference[10:12, 20:26] = 4.0  # a 2 x 6 person, 4 C above the floor
    difference[30, 5] = 2.0  # a 1-pixel warm spot: counted, but not the largest blob
    area, warm_pixels, count, peak, mean, elongation, length = probes.blob_row(difference)
    assert (area, warm_pixels, count) == (12, 13, 2)
    assert peak == mean == 4.0
    var_x, var_y = 35 / 11, 3 / 11  # sample variances of the blob's 12 pixel columns and rows
    assert elongation == pytest.approx(np.sqrt((var_x + 1e-3) / (var_y + 1e-3)))  # the script's 1e-3 keeps it finite
    assert length == pytest.approx(np.sqrt(var_x + 1e-3))
    assert probes.blob_row(np.zeros((40, 60), np.float32)) == [0.0] * 7


def test_clip_features_see_motion_and_repair_invalid_pixels(probes):
    clip = np.full((16, 40, 60), 20.0, np.float32)
    for t in range(16):
        clip[t, 18:22, 2 * t : 2 * t + 4] = 25.0  # a 4 x 4 blob walking 2 pixels a frame
    clip[3, 0, 0] = -273.2  # the sensor's invalid value: repaired, not read as a cold blob
    features = probes.clip_features(clip, None)
    still = clip.copy()
    still[:] = clip[0]
    still_features = probes.clip_features(still, None)
    assert features.shape == still_features.shape == (7 * 6 + 3,)
    assert np.isfinite(features).all()
    assert features[-3] == pytest.approx(2.0)  # mean step of the blob's centre, in pixels a frame
    assert still_features[-3] == 0.0
    assert features[0] == 16  # mean area: the 4 x 4 blob in every frame


def test_clip_features_against_a_recording_background(probes):
    background = np.full((40, 60), 20.0, np.float32)
    background[0:5, 0:5] = 30.0  # a radiator: warm in the room, not a person
    clip = np.repeat(background[None], 16, axis=0)
    clip[:, 20:23, 30:33] = 26.0
    with_room = probes.clip_features(clip, background)
    assert with_room[0] == 9  # only the person is left once the room is subtracted
    assert probes.clip_features(clip, None)[0] == 25  # against the frame's median the radiator is the larger blob
