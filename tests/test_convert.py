"""Conversion to a DatasetDict: schema, bit-exact frames, padding, targets, splits, atomic writes, cache, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_recordings import CATEGORIES, N_FRAMES, H, W, edit_json, make_frames, write_raw_dataset

from thermal_hf.data import convert as convert_module
from thermal_hf.data.convert import (
    CONVERSION_FILE,
    conversion_cache_key,
    convert_dataset,
    ensure_converted,
    is_converted_dataset,
    load_converted,
    main,
    read_conversion_info,
)
from thermal_hf.errors import ThermalDataError

NUM_FRAMES = 8
COLUMNS = ["frames", "timestamps", "label", "bbox", "recording", "sensor_id", "image_id", "object_id",
           "keyframe_index", "padded_frames", "invalid_fraction"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_raw_dataset(tmp_path_factory.mktemp("conv") / "raw")


@pytest.fixture(scope="module")
def converted(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv_out") / "ds"
    report = convert_dataset(raw, out, num_frames=NUM_FRAMES)
    return out, report


def test_schema(converted):
    out, _ = converted
    dd = load_converted(out)
    assert sorted(dd) == ["train", "validation"]
    for split in dd.values():
        assert list(split.features) == COLUMNS
        f = split.features
        assert type(f["frames"]).__name__ == "Array3D" and f["frames"].shape == (NUM_FRAMES, H, W)
        assert f["frames"].dtype == "float32"
        assert f["label"].names == CATEGORIES  # all categories, id order, also those without samples
        assert f["timestamps"].length == NUM_FRAMES and f["timestamps"].feature.dtype == "int64"
        assert f["bbox"].length == 4 and f["bbox"].feature.dtype == "float32"
        assert f["object_id"].dtype == "int64" and f["padded_frames"].dtype == "int32"
    assert (dd["train"].num_rows, dd["validation"].num_rows) == (9, 9)


def test_frames_are_bit_exact_raw_windows(converted, raw):
    out, _ = converted
    dd = load_converted(out)
    raw_frames = {f"R{i + 1}": make_frames(i) for i in range(3)}
    for split in dd.values():
        rows = split.with_format("numpy")[:]
        for i in range(split.num_rows):
            k, rec = int(rows["keyframe_index"][i]), str(rows["recording"][i])
            idx = np.clip(np.arange(k - NUM_FRAMES // 2, k - NUM_FRAMES // 2 + NUM_FRAMES), 0, N_FRAMES - 1)
            expected = raw_frames[rec][idx]
            assert rows["frames"][i].dtype == np.float32
            assert rows["frames"][i].tobytes() == expected.tobytes()
            assert rows["frames"][i][NUM_FRAMES // 2].tobytes() == raw_frames[rec][k].tobytes()
    # the invalid -273.2 tile of frame 3 survives
    r1 = dd["train"].with_format("numpy").filter(lambda r: r["recording"] == "R1" and r["keyframe_index"] == 2)
    assert np.float32(-273.2) in r1[0]["frames"]
    assert r1[0]["invalid_fraction"] == pytest.approx(6 / (NUM_FRAMES * H * W))


def test_padding_recorded(converted):
    out, report = converted
    dd = load_converted(out).with_format("numpy")
    pad = {(str(r), int(k)): int(p) for r, k, p in zip(dd["train"]["recording"], dd["train"]["keyframe_index"],
                                                        dd["train"]["padded_frames"])}
    assert pad[("R1", 2)] == 2 and pad[("R1", 20)] == 0
    assert set(list(dd["validation"]["padded_frames"])) == {2}  # keyframe 38 of 40: 4 before, 3 after (2 padded)
    ts = dd["train"].filter(lambda r: r["keyframe_index"] == 2)[0]["timestamps"]
    assert ts[0] == ts[1] == ts[2] and np.all(np.diff(ts) >= 0)  # edge frame's timestamp repeated
    assert report.padded_samples == {"train": 3, "validation": 9}


def test_person_columns_and_report(converted):
    out, report = converted
    ds = load_converted(out)["train"]
    row = ds.filter(lambda r: r["recording"] == "R3" and r["keyframe_index"] == 20 and r["object_id"] == 1)[0]
    assert row["label"] == 1 and row["sensor_id"] == "R3" and row["image_id"].startswith("R3_")
    np.testing.assert_allclose(row["bbox"], [0.4, 0.5, 0.2, 0.3], rtol=1e-6)
    assert report.num_samples == {"train": 9, "validation": 9}
    assert report.class_counts["train"] == {"sitting": 0, "standing": 3, "walking": 3, "lying": 3}
    assert report.class_counts["validation"] == {"sitting": 3, "standing": 0, "walking": 6, "lying": 0}
    text = report.format()
    for piece in ("train: 9 samples", "validation: 9 samples", "lying", "skipped: nothing", " s"):
        assert piece in text


def test_conversion_info_recorded(converted, raw):
    out, _ = converted
    info = read_conversion_info(out)
    assert info["source"] == str(raw.resolve())
    assert info["options"]["num_frames"] == NUM_FRAMES and info["options"]["target"] == "person"
    assert info["class_names"] == CATEGORIES and info["skipped"] == []
    assert info["class_counts"]["validation"]["walking"] == 6
    description = load_converted(out)["train"].info.description
    assert str(raw.resolve()) in description and '"class_counts"' in description
    assert is_converted_dataset(out) and not is_converted_dataset(raw)
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temp folders left


def test_keyframe_target(raw, tmp_path):
    report = convert_dataset(raw, tmp_path / "kf", target="keyframe", num_frames=4)
    dd = load_converted(tmp_path / "kf")
    assert (dd["train"].num_rows, dd["validation"].num_rows) == (6, 3)
    labels = {(r["recording"], r["keyframe_index"]): r["label"] for r in dd["train"]}
    assert labels[("R1", 20)] == 1 and labels[("R1", 2)] == 3
    assert set(dd["validation"]["label"]) == {2} and set(dd["train"]["object_id"]) == {-1}
    np.testing.assert_allclose(dd["validation"][0]["bbox"], [0.4, 0.5, 0.6, 0.3], rtol=1e-6)  # union box
    assert report.options["target"] == "keyframe"


def test_split_by_recording(raw, tmp_path):
    report = convert_dataset(raw, tmp_path / "a", num_frames=2, split_by="recording", val_fraction=0.34, seed=3)
    dd = load_converted(tmp_path / "a")
    train_recs, val_recs = set(dd["train"]["recording"]), set(dd["validation"]["recording"])
    assert train_recs and val_recs and not train_recs & val_recs
    assert len(val_recs) == 1 and dd["train"].num_rows + dd["validation"].num_rows == 18
    assert report.split_recordings == {"train": sorted(train_recs), "validation": sorted(val_recs)}
    again = convert_dataset(raw, tmp_path / "b", num_frames=2, split_by="recording", val_fraction=0.34, seed=3)
    assert again.split_recordings == report.split_recordings  # deterministic for a seed
    # a tiny or huge fraction still leaves at least one recording on each side
    for frac in (0.01, 0.99):
        r = convert_dataset(raw, tmp_path / f"c{frac}", num_frames=2, split_by="recording", val_fraction=frac)
        assert len(r.split_recordings["train"]) >= 1 and len(r.split_recordings["validation"]) >= 1


def test_skip_invalid_conversion(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw")
    edit_json(raw, "train", lambda d: d["annotations"][0].__setitem__("category_id", 42))
    (raw / "frames" / "R3.h5").unlink()
    with pytest.raises(ThermalDataError, match="category_id 42"):
        convert_dataset(raw, tmp_path / "out", num_frames=4)
    assert not (tmp_path / "out").exists()  # validated before writing anything
    report = convert_dataset(raw, tmp_path / "out", num_frames=4, skip_invalid=True)
    assert report.num_samples == {"train": 5, "validation": 6}
    reasons = "\n".join(s["reason"] for s in report.skipped)
    assert "category_id 42" in reasons and "missing" in reasons
    text = report.format()
    assert "skipped" in text and "category_id 42" in text and "frames/R3.h5" in text
    assert read_conversion_info(tmp_path / "out")["skipped"] == report.skipped
    kf = convert_dataset(raw, tmp_path / "kf", num_frames=4, skip_invalid=True, target="keyframe")
    assert kf.num_samples["train"] == 3  # R1 keyframe 2 lost its only (bad) person; R3 missing
    assert "ill-defined" in "\n".join(s["reason"] for s in kf.skipped)


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_failed_conversion_keeps_existing_dataset(raw, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    convert_dataset(raw, out, num_frames=2)
    before = _snapshot(out)
    # 1. bad input: refused before anything is written
    bad = write_raw_dataset(tmp_path / "bad")
    (bad / "frames" / "R2.h5").write_bytes(b"garbage")
    with pytest.raises(ThermalDataError):
        convert_dataset(bad, out, num_frames=4, overwrite=True)
    assert _snapshot(out) == before
    # 2. failure half-way through writing (e.g. disk full, Ctrl-C)
    calls = {"n": 0}
    real = convert_module.window_indices

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(convert_module, "window_indices", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert_dataset(raw, out, num_frames=4, overwrite=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "ds"]  # temp folder cleaned up
    # the command line says so, without a traceback
    calls["n"] = 0
    assert main([str(raw), str(out), "--num_frames", "4", "--overwrite"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: {out} is as it was" in err and "Traceback" not in err
    assert _snapshot(out) == before
    monkeypatch.undo()
    # 3. a successful conversion replaces it
    convert_dataset(raw, out, num_frames=4, overwrite=True)
    assert read_conversion_info(out)["options"]["num_frames"] == 4


def test_a_terminated_or_killed_conversion_leaves_nothing_behind(raw, tmp_path, monkeypatch):
    import os
    import signal
    import socket

    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "ds"
    # SIGTERM half-way through: the hidden folder goes, as on Ctrl-C
    calls = {"n": 0}
    real = convert_module.window_indices

    def terminated(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(convert_module, "window_indices", terminated)
    with pytest.raises(SystemExit):
        convert_dataset(raw, out, num_frames=4)
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    monkeypatch.undo()
    # a hidden folder of a process killed outright (SIGKILL: its lock is gone) is removed by the next conversion
    # into the same place; one whose conversion still runs (holds the lock), or of another machine, is left alone
    host = socket.gethostname()
    owners = {"killed": f"{host} 123", "running": f"{host} 456", "elsewhere": "another-host 789"}
    for name, owner in owners.items():
        (tmp_path / f".ds.converting-{name}").mkdir()
        (tmp_path / f".ds.converting-{name}" / ".owner").write_text(owner)
    running = open(tmp_path / ".ds.converting-running" / ".owner")
    fcntl.flock(running, fcntl.LOCK_EX)
    try:
        convert_dataset(raw, out, num_frames=4)
    finally:
        running.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.converting-elsewhere", ".ds.converting-running", "ds"]
    assert not (out / ".owner").exists()


def test_refuses_to_replace_foreign_folder(raw, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(ThermalDataError, match="not a converted thermal-hf dataset.*--overwrite"):
        convert_dataset(raw, out, num_frames=2)
    assert (out / "notes.txt").read_text() == "precious"
    convert_dataset(raw, out, num_frames=2, overwrite=True)
    assert is_converted_dataset(out) and not (out / "notes.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    convert_dataset(raw, empty, num_frames=2)  # an empty folder is fine
    with pytest.raises(ThermalDataError, match="overlaps"):
        convert_dataset(raw, raw / "converted", num_frames=2, overwrite=True)


def test_a_converted_folder_made_otherwise_is_replaced_only_when_asked(raw, tmp_path, capsys):
    out = tmp_path / "ds"
    convert_dataset(raw, out, num_frames=2)
    before = _snapshot(out)
    with pytest.raises(ThermalDataError, match=r"made otherwise \(target person -> keyframe, num_frames 2 -> 4\).*"
                                                r"--overwrite"):
        convert_dataset(raw, out, target="keyframe", num_frames=4)
    other_source = write_raw_dataset(tmp_path / "other")
    with pytest.raises(ThermalDataError, match=r"made otherwise \(source .* -> .*other\)"):
        convert_dataset(other_source, out, num_frames=2)
    assert main([str(raw), str(out), "--num_frames", "4"]) == 2
    assert "made otherwise (num_frames 2 -> 4)" in capsys.readouterr().err
    assert _snapshot(out) == before
    convert_dataset(raw, out, num_frames=2)  # the same conversion again refreshes it without asking
    convert_dataset(raw, out, num_frames=4, overwrite=True)
    assert read_conversion_info(out)["options"]["num_frames"] == 4


@pytest.mark.parametrize("kwargs,match", [({"target": "frame"}, "target"), ({"split_by": "x"}, "split_by"),
                                          ({"num_frames": 0}, "num_frames"), ({"val_fraction": 1.0}, "val_fraction")])
def test_bad_options(raw, tmp_path, kwargs, match):
    with pytest.raises(ThermalDataError, match=match):
        convert_dataset(raw, tmp_path / "x", **kwargs)


def test_load_converted_rejects_other_folders(raw, tmp_path):
    with pytest.raises(ThermalDataError, match="thermal-hf convert"):
        load_converted(raw)
    assert not is_converted_dataset(tmp_path / "missing")


def test_ensure_converted_cache(raw, tmp_path, monkeypatch, converted):
    monkeypatch.setenv("THERMAL_HF_CACHE", str(tmp_path / "cache"))
    first = ensure_converted(raw, num_frames=2)
    assert first.parent == tmp_path / "cache" / "converted" and is_converted_dataset(first)
    stamp = (first / CONVERSION_FILE).stat().st_mtime_ns
    assert ensure_converted(raw, num_frames=2) == first  # reused, not rebuilt
    assert (first / CONVERSION_FILE).stat().st_mtime_ns == stamp
    assert ensure_converted(raw, num_frames=4) != first  # other options -> other entry
    explicit = ensure_converted(raw, cache_dir=tmp_path / "other", num_frames=2)
    assert explicit.parent == tmp_path / "other"
    # a cache entry damaged since (a split's files gone) is converted again, a damaged folder of the user's named
    import shutil

    shutil.rmtree(first / "validation")
    with pytest.raises(ThermalDataError, match=f"{first}: damaged converted dataset .*thermal-hf convert RAW_DIR"):
        load_converted(first)
    with pytest.warns(UserWarning, match="damaged converted dataset"):
        assert ensure_converted(raw, num_frames=2) == first
    assert set(load_converted(first)) == {"train", "validation"}
    # defaults spelled out hash the same as defaults left out
    assert conversion_cache_key(raw, num_frames=64) == conversion_cache_key(raw)
    # a converted folder is returned as is
    out, _ = converted
    assert ensure_converted(out) == out
    recorded = read_conversion_info(out)["options"]
    with pytest.warns(UserWarning, match="different options"):
        ensure_converted(out, val_fraction=recorded["val_fraction"] / 2)
    # Windows of another length or rate would be padded or cut without a word: refused, naming both values.
    with pytest.raises(ThermalDataError, match=f"num_frames {recorded['num_frames']}, but num_frames 16 were asked"):
        ensure_converted(out, num_frames=16)
    with pytest.raises(ThermalDataError, match=r"frame_rate none \(consecutive recorded frames\), but frame_rate 1.5 were asked"):
        ensure_converted(out, frame_rate=1.5)
    with pytest.raises(ThermalDataError, match="unknown conversion option"):
        ensure_converted(raw, frames=3)
    with pytest.raises(ThermalDataError, match="neither"):
        ensure_converted(tmp_path)
    # a path that does not exist says so, as training does
    with pytest.raises(ThermalDataError, match=f"dataset {tmp_path / 'missing'}: folder not found"):
        ensure_converted(tmp_path / "missing")


def test_cache_key_changes_with_source_files(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw")
    key = conversion_cache_key(raw, num_frames=2)
    path = raw / "annotations" / "val.json"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert conversion_cache_key(raw, num_frames=2) != key


def test_cli(raw, tmp_path, capsys):
    assert main([str(raw), str(tmp_path / "cli"), "--num_frames", "4", "--target", "keyframe",
                 "--report_json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "train: 6 samples" in out and "validation: 3 samples" in out
    assert json.loads((tmp_path / "r.json").read_text())["num_samples"] == {"train": 6, "validation": 3}
    assert main([str(tmp_path / "nope"), str(tmp_path / "cli2")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main([str(raw), str(tmp_path / "cli3"), "--report_json", str(tmp_path / "no" / "r.json")]) == 2
    assert "its folder does not exist" in capsys.readouterr().err and not (tmp_path / "cli3").exists()
    assert main([str(raw), str(tmp_path / "cli3"), "--report_json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err and not (tmp_path / "cli3").exists()
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "lowest category id" in " ".join(capsys.readouterr().out.split()).lower()


def test_synthetic_dataset_converts(request):
    """Happy path on the shared synthetic fixture (skips until the generator exists)."""
    pytest.importorskip("thermal_hf.data.synthetic")
    path = request.getfixturevalue("converted_dataset")
    dd = load_converted(path)
    assert dd["train"].num_rows > 0 and dd["validation"].num_rows > 0
    assert dd["train"].features["frames"].shape[0] == 16
    assert len(dd["train"].features["label"].names) == 14


def test_clip_reader_matches_numpy_format(converted):
    from thermal_hf.data.convert import ClipReader

    out, _ = converted
    ds = load_converted(out)["train"]
    npds = ds.with_format("numpy")
    reader = ClipReader(ds)
    assert len(reader) == ds.num_rows
    for i in range(ds.num_rows):
        row = npds[i]
        sample = reader[i]
        assert sample["frames"].dtype == np.float32 and sample["frames"].tobytes() == row["frames"].tobytes()
        assert not sample["frames"].flags.writeable  # a view of the memory-mapped file, never written through
        assert sample["label"] == row["label"] and sample["recording"] == row["recording"]
        np.testing.assert_array_equal(sample["bbox"], row["bbox"])
    shuffled = ds.shuffle(seed=1).select(range(4))
    r2 = ClipReader(shuffled)
    for i in range(4):
        assert r2.frames(i).tobytes() == shuffled.with_format("numpy")[i]["frames"].tobytes()
        assert r2[i]["image_id"] == shuffled[i]["image_id"]
    assert r2.frames(-1).tobytes() == r2.frames(3).tobytes()
    with pytest.raises(IndexError):
        r2.frames(4)


def test_clip_reader_many_chunks(converted):
    from datasets import concatenate_datasets

    from thermal_hf.data.convert import ClipReader

    out, _ = converted
    dd = load_converted(out)
    ds = concatenate_datasets([dd["validation"], dd["train"], dd["validation"]])
    assert ds.data.table.column("frames").num_chunks > 1
    reader, npds = ClipReader(ds), ds.with_format("numpy")
    for i in range(ds.num_rows):
        assert reader.frames(i).tobytes() == npds[i]["frames"].tobytes()


def test_an_empty_split_is_refused_before_anything_is_written(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw")  # edited: not the module's
    edit_json(raw, "val", lambda d: d.__setitem__("annotations", []))
    with pytest.raises(ThermalDataError, match=r"no usable validation samples in the annotations of split "
                                               r"'validation' \(val.json\)"):
        convert_dataset(raw, tmp_path / "out", num_frames=NUM_FRAMES)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    assert (tmp_path / "raw" / "frames" / "R1.h5").is_file()


def test_an_output_inside_a_linked_frames_folder_is_refused(raw, tmp_path):
    linked = tmp_path / "linked"
    (linked / "annotations").mkdir(parents=True)
    for name in ("train.json", "val.json"):
        (linked / "annotations" / name).write_text((raw / "annotations" / name).read_text())
    (linked / "frames").symlink_to(raw / "frames")
    before = sorted(p.name for p in (raw / "frames").iterdir())
    with pytest.raises(ThermalDataError, match="overlaps the raw dataset"):
        convert_dataset(linked, raw / "frames", num_frames=NUM_FRAMES, overwrite=True)
    assert sorted(p.name for p in (raw / "frames").iterdir()) == before


def test_warnings_are_kept_in_the_record_and_an_unwritable_place_is_named(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw")  # edited: not the module's
    edit_json(raw, "train", lambda d: d["images"][0].__setitem__("timestamp", 1))
    with pytest.warns(UserWarning, match="timestamp 1"):
        convert_dataset(raw, tmp_path / "out", num_frames=NUM_FRAMES)
    assert any("timestamp 1" in w for w in read_conversion_info(tmp_path / "out")["warnings"])
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ThermalDataError, match="cannot write the converted dataset there"):
        convert_dataset(raw, blocked / "out", num_frames=NUM_FRAMES)
