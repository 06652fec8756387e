"""Window indices (32 + 1 + 31 convention, edge padding) and the person / keyframe targets."""

from __future__ import annotations

import numpy as np
import pytest
from test_recordings import CATEGORIES, write_raw_dataset

from thermal_hf.data.recordings import DatasetSource
from thermal_hf.data.windows import build_samples, majority_label, union_bbox, window_indices


def test_users_convention_64_frames():
    idx, before, after = window_indices(100, 64, 500)
    assert idx[0] == 68 and idx[32] == 100 and idx[-1] == 131  # 32 before, keyframe, 31 after
    assert idx.dtype == np.int64 and len(idx) == 64 and (before, after) == (0, 0)


@pytest.mark.parametrize("num_frames", [1, 2, 7, 8, 16])
def test_keyframe_position(num_frames):
    idx, _, _ = window_indices(50, num_frames, 200)
    assert idx[num_frames // 2] == 50 and len(idx) == num_frames
    np.testing.assert_array_equal(np.diff(idx), np.ones(num_frames - 1))


def test_padding_at_start_repeats_first_frame():
    idx, before, after = window_indices(2, 8, 40)
    np.testing.assert_array_equal(idx, [0, 0, 0, 1, 2, 3, 4, 5])
    assert (before, after) == (2, 0)


def test_padding_at_end_repeats_last_frame():
    idx, before, after = window_indices(38, 8, 40)
    np.testing.assert_array_equal(idx, [34, 35, 36, 37, 38, 39, 39, 39])
    assert (before, after) == (0, 2)


def test_window_longer_than_recording_pads_both_sides():
    idx, before, after = window_indices(1, 8, 3)
    np.testing.assert_array_equal(idx, [0, 0, 0, 0, 1, 2, 2, 2])
    assert (before, after) == (3, 2)


@pytest.mark.parametrize("args", [(5, 0, 10), (10, 4, 10), (-1, 4, 10), (0, 4, 0)])
def test_window_bad_arguments(args):
    with pytest.raises(ValueError):
        window_indices(*args)


def test_majority_label_ties_go_to_lowest_id():
    assert majority_label([2, 1]) == 1
    assert majority_label([1, 2]) == 1
    assert majority_label([2, 2, 0]) == 2
    assert majority_label([5, 3, 5, 3, 7]) == 3


def test_union_bbox():
    box = union_bbox([(0.2, 0.5, 0.2, 0.2), (0.6, 0.5, 0.2, 0.4)])
    np.testing.assert_allclose(box, (0.4, 0.5, 0.6, 0.4))
    assert union_bbox([(0.3, 0.3, 0.1, 0.1)]) == pytest.approx((0.3, 0.3, 0.1, 0.1))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return DatasetSource.open(write_raw_dataset(tmp_path_factory.mktemp("win") / "raw"))


def test_person_target(source):
    train, skipped = build_samples(source.splits["train"], "person")
    val, _ = build_samples(source.splits["validation"], "person")
    assert len(train) == 9 and len(val) == 9 and skipped == []
    kf20 = [s for s in train if s.recording == "R1" and s.keyframe_index == 20]
    assert [(s.label, s.object_id) for s in kf20] == [(2, 0), (1, 1)]
    assert kf20[1].bbox == pytest.approx((0.4, 0.5, 0.2, 0.3))


def test_keyframe_target(source):
    train, _ = build_samples(source.splits["train"], "keyframe")
    val, _ = build_samples(source.splits["validation"], "keyframe")
    assert len(train) == 6 and len(val) == 3
    labels = {(s.recording, s.keyframe_index): s.label for s in train + val}
    assert labels[("R2", 2)] == 3
    assert labels[("R2", 20)] == 1  # tie between 2 and 1 -> lowest id
    assert labels[("R2", 38)] == 2  # majority of (2, 2, 0)
    assert all(s.object_id == -1 for s in train + val)
    assert CATEGORIES[labels[("R2", 20)]] == "standing"


def test_samples_sorted_and_deterministic(source):
    a, _ = build_samples(source.splits["train"], "person")
    b, _ = build_samples(source.splits["train"], "person")
    assert a == b
    keys = [(s.recording, s.keyframe_index) for s in a]
    assert keys == sorted(keys)


def test_unknown_target(source):
    with pytest.raises(ValueError, match="unknown target"):
        build_samples(source.splits["train"], "frame")
