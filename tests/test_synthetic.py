"""The synthetic generator writes the real data's on-disk format, deterministically, with the real data's quirks."""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from thermal_hf.data.categories import DEFAULT_CATEGORY_NAMES
from thermal_hf.data.synthetic import INVALID_VALUE, UNUSED_CATEGORY_IDS, generate_dataset, main
from thermal_hf.data.transforms import invalid_mask, repair_invalid
from thermal_hf.errors import ThermalDataError

SMALL = dict(recordings=4, seed=3, frames_per_recording=240, keyframes_per_recording=20)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("a") / "synth", **SMALL)


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _annotations(root: Path) -> tuple[list[dict], list[dict]]:
    images, annotations = [], []
    for split in ("train", "val"):
        doc = json.loads((root / "annotations" / f"{split}.json").read_text())
        images += doc["images"]
        annotations += doc["annotations"]
    return images, annotations


def test_same_seed_gives_identical_files(synth, tmp_path):
    again = generate_dataset(tmp_path / "synth", **SMALL)  # same folder name, other parent, later in time
    assert _hashes(again) == _hashes(synth)
    other = generate_dataset(tmp_path / "other" / "synth", **{**SMALL, "seed": 4})
    assert _hashes(other)["frames/SY01_R1.h5"] != _hashes(synth)["frames/SY01_R1.h5"]


def test_layout_and_hdf5_format(synth):
    assert sorted(p.name for p in (synth / "frames").iterdir()) == [
        "SY01_R1.h5", "SY01_R2.h5", "SY02_R1.h5", "SY02_R2.h5", "sensor_info.json",
    ]
    assert {p.name for p in (synth / "annotations").iterdir()} == {"train.json", "val.json", "class_mapping.json"}
    info = json.loads((synth / "frames" / "sensor_info.json").read_text())
    for h5 in sorted((synth / "frames").glob("*.h5")):
        with h5py.File(h5, "r") as f:
            frames, timestamps = f["frames"], f["timestamps"][:]
            assert frames.dtype == np.float32 and frames.shape == (240, 40, 60)
            assert frames.chunks == (64, 40, 60) and frames.compression == "gzip" and frames.compression_opts == 4
            assert timestamps.dtype == np.int64 and np.array_equal(f["frame_seqs"][:], timestamps)
            assert np.all(np.diff(timestamps) > 0)
            attrs = dict(f.attrs)
            assert attrs["sensor_id"] == h5.stem and attrs["total_frames"] == 240
            assert (attrs["frame_height"], attrs["frame_width"]) == (40, 60)
            assert (attrs["min_timestamp"], attrs["max_timestamp"]) == (timestamps[0], timestamps[-1])
            valid = frames[:][~invalid_mask(frames[:])]
            assert 10.0 < np.median(valid) < 20.0 and valid.max() < 46.0
            assert np.allclose(valid * 10, np.round(valid * 10), atol=1e-3)  # 0.1 C steps like the sensor
        assert info[h5.stem]["total_frames"] == 240 and info[h5.stem]["min_timestamp"] == timestamps[0]


def test_annotations_format(synth):
    mapping = json.loads((synth / "annotations" / "class_mapping.json").read_text())
    assert mapping["classes"] == list(DEFAULT_CATEGORY_NAMES)
    assert mapping["class_to_id"] == {n: i for i, n in enumerate(DEFAULT_CATEGORY_NAMES)}
    train = json.loads((synth / "annotations" / "train.json").read_text())
    assert train["categories"] == [{"id": i, "name": n} for i, n in enumerate(DEFAULT_CATEGORY_NAMES)]
    images, annotations = _annotations(synth)
    by_id = {im["id"]: im for im in images}
    assert len(by_id) == len(images)
    assert len({a["id"] for a in annotations}) == len(annotations)
    for image in images:
        assert image["id"] == f"{image['sensor_id']}_{image['timestamp']}"
        assert (image["width"], image["height"]) == (60, 40)
        with h5py.File(synth / "frames" / f"{image['sensor_id']}.h5", "r") as f:
            assert f["timestamps"][image["frame_idx"]] == image["timestamp"]
    for a in annotations:
        assert a["image_id"] in by_id
        assert DEFAULT_CATEGORY_NAMES[a["category_id"]] == a["category_name"]
        assert a["category_id"] not in UNUSED_CATEGORY_IDS
        assert len(a["bbox"]) == 4 and all(0.0 <= v <= 1.0 for v in a["bbox"]) and a["bbox"][2] > 0
    val_images, _ = _annotations(synth)
    num_val = len(json.loads((synth / "annotations" / "val.json").read_text())["images"])
    assert 0 < num_val < len(val_images)
    assert len({a["category_id"] for a in annotations}) >= 8


def test_same_format_as_real_data(synth, real_data_root):
    with h5py.File(next((real_data_root / "frames").glob("*.h5")), "r") as real, h5py.File(
        synth / "frames" / "SY01_R1.h5", "r"
    ) as fake:
        assert set(real.keys()) == set(fake.keys())
        assert set(real.attrs.keys()) == set(fake.attrs.keys())
        for key in real.attrs:
            assert type(real.attrs[key]) is type(fake.attrs[key]), key
        for key in real:
            assert real[key].dtype == fake[key].dtype and real[key].chunks == fake[key].chunks
    real_train = json.loads((real_data_root / "annotations" / "train.json").read_text())
    fake_train = json.loads((synth / "annotations" / "train.json").read_text())
    assert set(real_train) == set(fake_train)
    assert set(real_train["images"][0]) == set(fake_train["images"][0])
    assert set(real_train["annotations"][0]) == set(fake_train["annotations"][0])
    assert real_train["categories"] == fake_train["categories"]
    real_mapping = json.loads((real_data_root / "annotations" / "class_mapping.json").read_text())
    assert json.loads((synth / "annotations" / "class_mapping.json").read_text()) == real_mapping
    real_info = json.loads((real_data_root / "frames" / "sensor_info.json").read_text())
    fake_info = json.loads((synth / "frames" / "sensor_info.json").read_text())
    assert set(next(iter(real_info.values()))) == set(fake_info["SY01_R1"])


def test_invalid_tiles_like_the_real_sensor(synth):
    for name, expect_invalid in (("SY01_R1", True), ("SY01_R2", True), ("SY02_R1", False)):
        with h5py.File(synth / "frames" / f"{name}.h5", "r") as f:
            frames = f["frames"][:]
        bad = invalid_mask(frames)
        bad_frames = bad.any(axis=(1, 2))
        if not expect_invalid:
            assert not bad.any()
            continue
        assert 0.02 < bad_frames.mean() < 0.3
        assert np.all(frames[bad] == np.float32(INVALID_VALUE))
        flat = bad[bad_frames].reshape(int(bad_frames.sum()), -1)
        assert np.all(flat[:, -1]) and flat.mean() > 0.2  # the tail of the frame, in large blocks
        repaired = repair_invalid(frames[:64])
        assert repaired.min() > 5.0


def test_irregular_timing_with_long_gaps(synth):
    medians = []
    for h5 in sorted((synth / "frames").glob("*.h5")):
        with h5py.File(h5, "r") as f:
            gaps = np.diff(f["timestamps"][:])
        medians.append(np.median(gaps))
        assert gaps.max() >= 500 and (gaps > 450).sum() >= 10
        assert gaps.std() > 0.2 * np.median(gaps)  # jittered, not a fixed frame rate
    assert all(30 <= m <= 200 for m in medians) and max(medians) > 1.5 * min(medians)


def test_multiple_people_with_different_labels_and_edge_keyframes(synth):
    images, annotations = _annotations(synth)
    persons = collections.defaultdict(list)
    for a in annotations:
        persons[a["image_id"]].append(a)
    multi = [v for v in persons.values() if len(v) > 1]
    assert multi and any(len({a["category_id"] for a in v}) > 1 for v in multi)
    assert all(len({a["object_id"] for a in v}) == len(v) for v in multi)
    assert any(im["frame_idx"] < 16 or im["frame_idx"] > 240 - 16 for im in images)  # a window crosses an edge


def test_bad_arguments_and_existing_output(tmp_path, capsys):
    with pytest.raises(ThermalDataError, match="category_names"):
        generate_dataset(tmp_path / "x", category_names=["a", "b"])
    out = tmp_path / "cli"
    assert main([str(out), "--recordings", "1", "--frames_per_recording", "64", "--keyframes_per_recording", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    before = _hashes(out)
    assert main([str(out), "--recordings", "1", "--frames_per_recording", "64", "--seed", "5"]) == 2
    assert "error:" in capsys.readouterr().err and _hashes(out) == before  # left untouched
    assert main([str(out), "--recordings", "1", "--frames_per_recording", "64", "--seed", "5", "--overwrite"]) == 0
    assert _hashes(out) != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


@pytest.mark.parametrize("flags, expected", [
    (["--seed", "-1"], "seed must be a non-negative integer"),
    (["--multi_person_fraction", "2"], "multi_person_fraction must be in [0, 1]"),
    (["--multi_person_fraction", "-1"], "multi_person_fraction must be in [0, 1]"),
])
def test_out_of_range_options_are_named(tmp_path, capsys, flags, expected):
    assert main([str(tmp_path / "x"), "--recordings", "1", "--frames_per_recording", "16", *flags]) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_the_shortest_recordings_and_a_file_as_output(tmp_path, capsys):
    # 8 frames is the documented minimum, with a second person in the recording (seeds 0-2 drew one past the end)
    for seed in range(3):
        out = tmp_path / f"s{seed}"
        assert main([str(out), "--recordings", "1", "--frames_per_recording", "8", "--seed", str(seed),
                     "--multi_person_fraction", "1"]) == 0, capsys.readouterr().err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    assert main([str(a_file), "--recordings", "1"]) == 2
    assert "an existing file" in capsys.readouterr().err and a_file.read_text() == "keep"


def test_an_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    import os
    import signal
    import socket

    from thermal_hf.data import synthetic

    out = tmp_path / "ds"
    real, calls = synthetic._write_h5, {"n": 0}

    def terminated(*args, **kwargs):  # `kill` while the second recording is written
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_write_h5", terminated)
    with pytest.raises(SystemExit):
        generate_dataset(out, recordings=2, frames_per_recording=16, keyframes_per_recording=2)
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    monkeypatch.undo()
    # the folder of a generation killed outright (its lock gone) is removed by the next one into the same place
    (tmp_path / ".ds.tmp-killed").mkdir()
    (tmp_path / ".ds.tmp-killed" / ".owner").write_text(f"{socket.gethostname()} 123")
    generate_dataset(out, recordings=1, frames_per_recording=16, keyframes_per_recording=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"] and not (out / ".owner").exists()
