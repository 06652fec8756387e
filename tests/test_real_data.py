"""The users' real recordings (skips when ../shared/datasets/thermal_action_v1 is absent)."""

from __future__ import annotations

import json
from collections import Counter

import h5py
import numpy as np
import pytest

from thermal_hf.data.convert import convert_dataset, load_converted, read_conversion_info
from thermal_hf.data.recordings import DatasetSource

pytestmark = pytest.mark.real_data

FILES = {"train": "train.json", "validation": "val.json"}


def _annotation_counts(root, target):
    """Class counts straight from the JSON files (independent of thermal_hf's reader)."""
    counts = {}
    for split, name in FILES.items():
        data = json.loads((root / "annotations" / name).read_text())
        if target == "person":
            counts[split] = Counter(a["category_id"] for a in data["annotations"])
        else:
            per_image = {}
            for a in data["annotations"]:
                per_image.setdefault(a["image_id"], []).append(a["category_id"])
            labels = []
            for cats in per_image.values():
                c = Counter(cats)
                top = max(c.values())
                labels.append(min(k for k, v in c.items() if v == top))  # ties -> lowest id
            counts[split] = Counter(labels)
    return counts


@pytest.fixture(scope="module")
def person_ds(real_data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "person"
    report = convert_dataset(real_data_root, out, num_frames=64)
    return out, report


def _check_bit_exact(root, dd, num_frames):
    raw = {}
    for split in dd.values():
        rows = split.with_format("numpy")[:]
        for i in range(split.num_rows):
            rec, k = str(rows["recording"][i]), int(rows["keyframe_index"][i])
            if rec not in raw:
                with h5py.File(root / "frames" / f"{rec}.h5", "r") as f:
                    raw[rec] = (f["frames"][:], f["timestamps"][:])
            frames, stamps = raw[rec]
            start = k - num_frames // 2
            assert 0 <= start and start + num_frames <= len(frames)  # no real window crosses a file edge
            assert rows["frames"][i].tobytes() == frames[start:start + num_frames].tobytes(), (rec, k)
            np.testing.assert_array_equal(rows["timestamps"][i], stamps[start:start + num_frames])
            assert rows["padded_frames"][i] == 0


def test_validates_clean(real_data_root):
    source = DatasetSource.open(real_data_root)
    assert source.skipped == [] and len(source.recordings) == 8
    assert len(source.class_names) == 14 and source.class_names[3] == "lying down-lying with risk"


def test_person_target(person_ds, real_data_root):
    out, report = person_ds
    dd = load_converted(out)
    assert (dd["train"].num_rows, dd["validation"].num_rows) == (405, 95)
    assert dd["train"].features["frames"].shape == (64, 40, 60)
    expected = _annotation_counts(real_data_root, "person")
    for split in dd:
        got = Counter(list(dd[split]["label"]))
        assert got == expected[split], split
    names = dd["train"].features["label"].names
    assert report.class_counts["train"]["lying down-lying with risk"] == 220
    assert report.class_counts["train"]["standing"] == 123
    assert read_conversion_info(out)["class_counts"]["validation"][names[1]] == 25


def test_person_frames_bit_exact(person_ds, real_data_root):
    out, _ = person_ds
    dd = load_converted(out)
    _check_bit_exact(real_data_root, dd, 64)
    from thermal_hf.data.convert import ClipReader

    reader, rows = ClipReader(dd["validation"]), dd["validation"].with_format("numpy")[:]
    for i in range(len(reader)):
        assert reader.frames(i).tobytes() == rows["frames"][i].tobytes()
    inv = dd["train"].with_format("numpy")[:]
    sl14 = np.char.startswith(inv["recording"].astype(str), "SL14")
    assert inv["invalid_fraction"][sl14].max() > 0  # the -273.2 tiles are kept
    assert inv["invalid_fraction"][~sl14].max() == 0
    assert inv["frames"][sl14].min() == np.float32(-273.2)


def test_keyframe_target(real_data_root, tmp_path):
    convert_dataset(real_data_root, tmp_path / "kf", target="keyframe", num_frames=16)
    dd = load_converted(tmp_path / "kf")
    assert (dd["train"].num_rows, dd["validation"].num_rows) == (314, 73)
    expected = _annotation_counts(real_data_root, "keyframe")
    for split in dd:
        assert Counter(list(dd[split]["label"])) == expected[split], split
    _check_bit_exact(real_data_root, dd, 16)


def test_split_by_recording(real_data_root, tmp_path):
    report = convert_dataset(real_data_root, tmp_path / "rec", num_frames=2, split_by="recording", seed=0)
    train, val = report.split_recordings["train"], report.split_recordings["validation"]
    assert len(val) == 2 and len(train) == 6 and not set(train) & set(val)
    assert report.num_samples["train"] + report.num_samples["validation"] == 500


def test_frame_rate_windows_span_the_same_time(real_data_root, tmp_path):
    """The shipped native recipe's windows: 16 instants at 1.5 frames/s on bursty timestamps (35 ms to 2.6 s apart)."""
    from thermal_hf.data.windows import time_window_indices

    report = convert_dataset(real_data_root, tmp_path / "fr", target="keyframe", num_frames=16, frame_rate=1.5)
    assert report.options["frame_rate"] == 1.5
    dd = load_converted(tmp_path / "fr")
    assert (dd["train"].num_rows, dd["validation"].num_rows) == (314, 73)
    rows = dd["train"].with_format("numpy")[:]
    stamps = {}
    for rec in sorted(set(rows["recording"])):
        with h5py.File(real_data_root / "frames" / f"{rec}.h5") as f:
            stamps[rec] = f["timestamps"][:]
    spans = []
    for i in range(len(rows["label"])):
        rec, k = rows["recording"][i], int(rows["keyframe_index"][i])
        idx, before, after = time_window_indices(stamps[rec], k, 16, 1.5)
        np.testing.assert_array_equal(rows["timestamps"][i], stamps[rec][idx])
        assert rows["padded_frames"][i] == before + after
        assert rows["timestamps"][i][8] == stamps[rec][k]  # the keyframe is the centre slot
        if not before + after:
            spans.append((rows["timestamps"][i][-1] - rows["timestamps"][i][0]) / 1000)
    # Every unpadded window spans 10 s of the recording (15 steps of 2/3 s, give or take the nearest frame's
    # distance), whatever the sensor's rate around it; 64 consecutive recorded frames span 9.3 to 14.7 s here.
    assert len(spans) > 250 and 8.0 < min(spans) and max(spans) < 12.0
