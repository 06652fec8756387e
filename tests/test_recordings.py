"""Reading and validating raw recordings + annotations; every bad input gives a clear, complete error.

`write_raw_dataset` builds a tiny raw dataset with h5py directly (independent of the synthetic generator);
test_convert.py and test_windows.py import it from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from thermal_hf.data.recordings import DatasetSource, Recording, inspect_recording, load_annotations
from thermal_hf.errors import ThermalDataError

CATEGORIES = ["sitting", "standing", "walking", "lying"]
N_FRAMES, H, W = 40, 6, 8


def make_frames(seed: int, n: int = N_FRAMES, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = (17.0 + rng.normal(0, 2, size=(n, h, w))).astype(np.float32)
    frames[3, :2, :3] = np.float32(-273.2)  # an invalid tile, must survive conversion bit-exact
    return frames


def write_recording(path: Path, frames: np.ndarray, timestamps: np.ndarray | None = None, **attrs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if timestamps is None:
        timestamps = 1_700_000_000_000 + np.cumsum(np.full(len(frames), 40, dtype=np.int64))
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames, compression="gzip", compression_opts=4,
                         chunks=(min(8, len(frames)), *frames.shape[1:]) if frames.ndim == 3 else None)
        f.create_dataset("timestamps", data=timestamps)
        f.create_dataset("frame_seqs", data=timestamps)
        f.attrs["sensor_id"] = path.stem
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def write_raw_dataset(root: Path, recordings: tuple[str, ...] = ("R1", "R2", "R3")) -> Path:
    """3 recordings x 40 frames of 6x8; per recording keyframes at 2 and 20 (train) and 38 (val).

    frame 2 / 38 windows cross the recording's edges for num_frames >= 6 / 4. Keyframe 20 holds two persons
    (labels 2 and 1: a tie, keyframe label 1); keyframe 38 holds three (2, 2, 0: majority 2).
    """
    root = Path(root)
    stamps = {}
    for i, name in enumerate(recordings):
        ts = 1_700_000_000_000 + i * 100_000 + np.cumsum(np.full(N_FRAMES, 40, dtype=np.int64))
        write_recording(root / "frames" / f"{name}.h5", make_frames(i), ts)
        stamps[name] = ts
    cats = [{"id": i, "name": n} for i, n in enumerate(CATEGORIES)]
    files = {"train": {"images": [], "annotations": [], "categories": cats},
             "val": {"images": [], "annotations": [], "categories": cats}}
    ann_id = 0
    for name in recordings:
        for frame_idx, split, labels in ((2, "train", [3]), (20, "train", [2, 1]), (38, "val", [2, 2, 0])):
            image_id = f"{name}_{int(stamps[name][frame_idx])}"
            files[split]["images"].append({"id": image_id, "sensor_id": name, "timestamp": int(stamps[name][frame_idx]),
                                           "frame_idx": frame_idx, "width": W, "height": H})
            for obj, label in enumerate(labels):
                files[split]["annotations"].append({
                    "id": ann_id, "image_id": image_id, "bbox": [0.2 + 0.2 * obj, 0.5, 0.2, 0.3],
                    "category_id": label, "category_name": CATEGORIES[label], "object_id": obj,
                })
                ann_id += 1
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, data in files.items():
        (root / "annotations" / f"{split}.json").write_text(json.dumps(data))
    (root / "annotations" / "class_mapping.json").write_text(json.dumps(
        {"classes": CATEGORIES, "class_to_id": {n: i for i, n in enumerate(CATEGORIES)}}))
    return root


def edit_json(root: Path, split: str, fn) -> None:
    path = root / "annotations" / f"{split}.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def raw(tmp_path) -> Path:
    return write_raw_dataset(tmp_path / "raw")


# --------------------------------------------------------------------------------------------- happy path
def test_open_valid_dataset(raw):
    source = DatasetSource.open(raw)
    assert source.class_names == CATEGORIES
    assert sorted(source.recordings) == ["R1", "R2", "R3"]
    assert len(source.splits["train"].images) == 6 and len(source.splits["train"].annotations) == 9
    assert len(source.splits["validation"].images) == 3 and len(source.splits["validation"].annotations) == 9
    assert source.skipped == [] and source.warnings == []


def test_recording_reads_exactly(raw):
    rec = Recording(raw / "frames" / "R2.h5")
    assert (rec.name, rec.sensor_id, rec.num_frames, rec.height, rec.width) == ("R2", "R2", N_FRAMES, H, W)
    expected = make_frames(1)
    np.testing.assert_array_equal(rec.read(5, 13), expected[5:13])
    frames, stamps = rec.read_all()
    assert frames.dtype == np.float32 and stamps.dtype == np.int64
    assert frames.tobytes() == expected.tobytes()  # bit-exact, -273.2 included
    np.testing.assert_array_equal(rec.timestamps, stamps)


def test_load_annotations_single_split(raw):
    ann = load_annotations(raw, "validation")
    assert ann.path.name == "val.json" and [c.name for c in ann.categories] == CATEGORIES
    assert ann.problems == []


# --------------------------------------------------------------------------------------------- error cases
def _remove_dataset(name):
    def fn(root):
        with h5py.File(root / "frames" / "R1.h5", "a") as f:
            del f[name]
    return fn


def _replace_dataset(name, data):
    def fn(root):
        with h5py.File(root / "frames" / "R1.h5", "a") as f:
            del f[name]
            f.create_dataset(name, data=data)
    return fn


def _truncate(root):
    path = root / "frames" / "R1.h5"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _corrupt_chunk(root):
    # keep the header intact but overwrite compressed chunk data in the middle of the file
    path = root / "frames" / "R1.h5"
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid: mid + 2000] = b"\x00" * 2000
    path.write_bytes(bytes(raw))


def _backwards(root):
    ts = 1_700_000_000_000 + np.cumsum(np.full(N_FRAMES, 40, dtype=np.int64))
    ts[10] = ts[5]
    _replace_dataset("timestamps", ts)(root)


def _json(split, fn):
    return lambda root: edit_json(root, split, fn)


def _set_image(i, key, value):
    def fn(d):
        d["images"][i][key] = value
    return fn


def _set_ann(i, key, value):
    def fn(d):
        d["annotations"][i][key] = value
    return fn


ERROR_CASES = {
    "missing recording": (lambda root: (root / "frames" / "R1.h5").unlink(), ["frames/R1.h5", "missing"]),
    "missing frames": (_remove_dataset("frames"), ["frames/R1.h5", "missing dataset 'frames'"]),
    "missing timestamps": (_remove_dataset("timestamps"), ["frames/R1.h5", "missing dataset 'timestamps'"]),
    "wrong rank": (_replace_dataset("frames", np.zeros((N_FRAMES, H * W), np.float32)), ["rank 2", "expected rank 3"]),
    "wrong dtype": (_replace_dataset("frames", np.zeros((N_FRAMES, H, W), np.int16)), ["dtype int16", "float32"]),
    "timestamp dtype": (_replace_dataset("timestamps", np.zeros(N_FRAMES, np.float64)), ["timestamps", "int64"]),
    "timestamps backwards": (_backwards, ["frames/R1.h5", "go backwards", "index 10"]),
    "timestamps length": (_replace_dataset("timestamps", np.arange(5, dtype=np.int64)), ["5 entries", "40"]),
    "truncated hdf5": (_truncate, ["frames/R1.h5", "truncated or corrupt"]),
    "corrupt chunk": (_corrupt_chunk, ["frames/R1.h5", "truncated or corrupt"]),
    "not hdf5": (lambda root: (root / "frames" / "R1.h5").write_bytes(b"not an hdf5 file"), ["truncated or corrupt"]),
    "frame_idx outside": (_json("train", _set_image(1, "frame_idx", 40)), ["annotations/train.json", "frame_idx 40",
                                                                            "0..39"]),
    "frame_idx negative": (_json("val", _set_image(0, "frame_idx", -1)), ["annotations/val.json", "frame_idx -1"]),
    "frame_idx not int": (_json("train", _set_image(0, "frame_idx", "7")), ["frame_idx is '7'"]),
    "unknown category": (_json("train", _set_ann(0, "category_id", 99)), ["annotation 0", "category_id 99",
                                                                           "expected one of [0, 1, 2, 3]"]),
    "bbox outside": (_json("val", _set_ann(1, "bbox", [0.5, 0.5, 1.5, 0.2])), ["bbox", "outside 0..1"]),
    "bbox malformed": (_json("val", _set_ann(1, "bbox", [0.5, 0.5])), ["not 4 finite numbers"]),
    "duplicate image id": (_json("train", lambda d: d["images"].append(dict(d["images"][0]))),
                           ["appears 2 times", "unique image ids"]),
    "duplicate annotation id": (_json("train", lambda d: d["annotations"].append(dict(d["annotations"][0]))),
                                ["annotation 0", "annotation id appears 2 times", "unique annotation ids"]),
    "category name contradicts id": (_json("val", _set_ann(0, "category_name", CATEGORIES[1])),
                                     ["annotations/val.json", f"category_name {CATEGORIES[1]!r} contradicts category_id"]),
    "orphan annotation": (_json("train", _set_ann(2, "image_id", "nope_123")), ["image nope_123",
                                                                                 "not in 'images'"]),
    "unsigned timestamps backwards": (_replace_dataset("timestamps", np.arange(N_FRAMES, 0, -1).astype(np.uint32)),
                                      ["frames/R1.h5", "go backwards"]),
    "no frame": (_replace_dataset("frames", np.zeros((0, H, W), np.float32)), ["frames/R1.h5", "no frame or no pixel"]),
    "sensor_id outside frames/": (_json("train", _set_image(0, "sensor_id", "../R1")), ["sensor_id is '../R1'",
                                                                                        "no folder"]),
    "bbox of strings": (_json("val", _set_ann(1, "bbox", ["0.5", "0.5", "0.1", "0.1"])), ["not 4 finite numbers"]),
    "bbox of booleans": (_json("val", _set_ann(1, "bbox", [True, True, False, False])), ["not 4 finite numbers"]),
    "bbox without area": (_json("val", _set_ann(1, "bbox", [0.5, 0.5, 0.0, 0.2])), ["has no area"]),
    "object_id not an integer": (_json("train", _set_ann(0, "object_id", "3")), ["object_id '3'"]),
    "one keyframe under two image ids": (
        _json("train", lambda d: d["images"].append({**d["images"][0], "id": "copy"})),
        ["image copy", "like image", "one image per keyframe"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_each_bad_input_gives_clear_error(raw, case):
    mutate, expected = ERROR_CASES[case]
    mutate(raw)
    with pytest.raises(ThermalDataError) as info:
        DatasetSource.open(raw)
    message = str(info.value)
    for text in expected:
        assert text in message, f"{case}: {text!r} not in:\n{message}"
    assert "--skip_invalid" in message  # sample-level problems can be skipped


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_skip_invalid_lists_what_was_skipped(raw, case):
    mutate, expected = ERROR_CASES[case]
    mutate(raw)
    source = DatasetSource.open(raw, skip_invalid=True)
    assert source.skipped, case
    listed = "\n".join(str(p) for p in source.skipped)
    assert expected[0] in listed
    # the rest of the data is still there
    assert len(source.splits["train"].images) + len(source.splits["validation"].images) >= 5


def test_duplicate_image_id_across_splits(raw):
    train = json.loads((raw / "annotations" / "train.json").read_text())
    edit_json(raw, "val", lambda d: d["images"].append(train["images"][0]))
    with pytest.raises(ThermalDataError, match="also appears in annotations/train.json"):
        DatasetSource.open(raw)


def test_every_problem_is_reported_at_once(raw):
    (raw / "frames" / "R3.h5").unlink()
    edit_json(raw, "train", lambda d: (_set_image(1, "frame_idx", 400)(d), _set_ann(0, "category_id", 7)(d)))
    edit_json(raw, "val", _set_ann(1, "bbox", [0.5, -0.1, 0.2, 0.2]))
    with pytest.raises(ThermalDataError) as info:
        DatasetSource.open(raw)
    message = str(info.value)
    for text in ("frames/R3.h5", "frame_idx 400", "category_id 7", "outside 0..1", "keyframe(s) of the unusable"):
        assert text in message, message
    assert len(info.value.problems) >= 4


def test_inspect_recording_ok(raw):
    assert inspect_recording(raw / "frames" / "R1.h5") == []


@pytest.mark.parametrize("what", ["folder", "annotations", "train.json", "bad json", "categories", "category ids",
                                  "class mapping", "categories differ"])
def test_fatal_problems(raw, what):
    if what == "folder":
        raw = raw / "nope"
    elif what == "annotations":
        import shutil

        shutil.rmtree(raw / "annotations")
    elif what == "train.json":
        (raw / "annotations" / "train.json").unlink()
    elif what == "bad json":
        (raw / "annotations" / "val.json").write_text("{not json")
    elif what == "categories":
        edit_json(raw, "train", lambda d: d.pop("categories"))
    elif what == "category ids":
        edit_json(raw, "train", lambda d: d["categories"].__setitem__(0, {"id": 7, "name": "sitting"}))
    elif what == "class mapping":
        (raw / "annotations" / "class_mapping.json").write_text(json.dumps({"classes": ["x", "y"]}))
    elif what == "categories differ":
        edit_json(raw, "val", lambda d: d["categories"].__setitem__(0, {"id": 0, "name": "crouching"}))
    with pytest.raises(ThermalDataError) as info:
        DatasetSource.open(raw, skip_invalid=True)  # fatal: cannot be skipped
    assert str(raw) in str(info.value)


def test_timestamp_mismatch_is_only_a_warning(raw):
    edit_json(raw, "train", _set_image(0, "timestamp", 5))
    with pytest.warns(UserWarning, match="timestamp 5"):
        source = DatasetSource.open(raw)
    assert len(source.splits["train"].images) == 6


def test_one_keyframe_in_both_splits_under_two_ids_is_refused(raw):
    train = json.loads((raw / "annotations" / "train.json").read_text())
    edit_json(raw, "val", lambda d: (d["images"].append({**train["images"][0], "id": "leak"}),
                                     d["annotations"].append({**train["annotations"][0], "id": 999, "image_id": "leak",
                                                              "category_id": 2, "category_name": CATEGORIES[2]})))
    with pytest.raises(ThermalDataError, match=r"annotations/val.json: image leak: is frames/R1.h5 row 2, like image"):
        DatasetSource.open(raw)


def test_people_without_object_id_are_numbered_in_their_keyframe(raw):
    def drop(d):
        for a in d["annotations"]:
            a.pop("object_id")

    edit_json(raw, "val", drop)
    with pytest.warns(UserWarning, match="9 annotation"):  # one val keyframe per recording, 3 people each
        source = DatasetSource.open(raw)
    ids = {}
    for a in source.splits["validation"].annotations:
        ids.setdefault(a.image_id, []).append(a.object_id)
    assert all(sorted(people) == [0, 1, 2] for people in ids.values()) and len(ids) == 3
    assert any("no object_id" in w for w in source.warnings)


def test_duplicate_category_names_are_fatal(raw):
    edit_json(raw, "train", lambda d: d["categories"].__setitem__(1, {"id": 1, "name": CATEGORIES[0]}))
    with pytest.raises(ThermalDataError, match="is given to 2 categories"):
        DatasetSource.open(raw, skip_invalid=True)


def test_unused_recordings_and_a_second_val_file_are_said(raw):
    import shutil

    shutil.copy(raw / "frames" / "R1.h5", raw / "frames" / "EXTRA.h5")
    shutil.copy(raw / "annotations" / "val.json", raw / "annotations" / "validation.json")
    source = DatasetSource.open(raw)
    said = "\n".join(source.warnings)
    assert "1 recording(s) no usable keyframe refers to, left out: EXTRA" in said
    assert "annotations/val.json and annotations/validation.json both exist" in said
