"""`thermal-hf predict`: sliding windows over whole recordings, timelines timed by the recording's timestamps."""

from __future__ import annotations

import csv
import json
import re
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import TINY_NUM_FRAMES

from thermal_hf.predict import iter_window_batches, main, window_starts

T = TINY_NUM_FRAMES
N = 100
GAP_AT = 50  # a 2.5 s hole in the timing between frames 49 and 50
T0 = 1_700_000_000_000


def _timestamps() -> np.ndarray:
    rng = np.random.default_rng(1)
    steps = rng.integers(40, 160, N).astype(np.int64)  # irregular: ~6 to 25 frames a second
    steps[0] = 0
    steps[GAP_AT] = 2500
    return T0 + np.cumsum(steps)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    frames = rng.normal(17.0, 0.5, (N, 40, 60)).astype(np.float32)
    frames[:, 10:30, 25:35] = 33.0
    frames[20] = -273.2  # a dropped frame
    frames[21:24, :8] = -273.2  # dead rows
    frames[60, 5, 5] = np.nan
    path = tmp_path_factory.mktemp("rec") / "SY42_R1.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames, chunks=(8, 40, 60), compression="gzip", compression_opts=4)
        f.create_dataset("timestamps", data=_timestamps())
    return path


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_window_starts_cover_the_tail():
    assert window_starts(100, 16, 8).tolist() == list(range(0, 85, 8)) + [84]
    assert window_starts(96, 16, 8).tolist() == list(range(0, 81, 8))
    assert window_starts(5, 16, 8).tolist() == [0]


def test_rolling_buffer_reads_each_frame_once(recording, monkeypatch):
    rows_read = []
    original = h5py.Dataset.__getitem__

    def counting(self, key):
        out = original(self, key)
        if self.name == "/frames":
            rows_read.append(len(out))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    with h5py.File(recording) as f:
        frames, stamps = f["frames"][:], f["timestamps"][:]
    rows_read.clear()
    windows = 0
    for batch in iter_window_batches(recording, T, stride=8, batch_size=3):
        for start, clip, ts in zip(batch.starts, batch.clips, batch.timestamps):
            np.testing.assert_array_equal(clip, frames[start : start + T])
            np.testing.assert_array_equal(ts, stamps[start : start + T])
            windows += 1
    assert windows == len(window_starts(N, T, 8))
    assert sum(rows_read) == N  # every row once, never the whole file at a time
    assert max(rows_read) <= 2 * 8 + T


def test_predict_timeline_times_come_from_timestamps(tiny_model_dir, recording, tmp_path):
    from transformers import pipeline

    out = tmp_path / "out"
    assert main(["--model", str(tiny_model_dir), str(recording), "--stride", "8", "--batch_size", "3",
                 "--output_dir", str(out)]) == 0
    rows = _rows(out / "timeline.csv")
    stamps = _timestamps()
    starts = window_starts(N, T, 8)
    assert [int(r["start_frame"]) for r in rows] == starts.tolist()
    for r, s in zip(rows, starts):
        assert int(r["end_frame"]) == s + T - 1
        assert int(r["start_time_ms"]) == stamps[s] and int(r["end_time_ms"]) == stamps[s + T - 1]
        assert int(r["centre_time_ms"]) == stamps[s + T // 2]
        assert float(r["start_s"]) == pytest.approx((stamps[s] - stamps[0]) / 1000)
        probs = [float(v) for k, v in r.items() if k.startswith("prob_")]
        assert len(probs) == 14 and sum(probs) == pytest.approx(1.0, abs=1e-6)
        assert float(r["score"]) == pytest.approx(max(probs))
    crossing = [r for r in rows if int(r["start_frame"]) < GAP_AT <= int(r["end_frame"])]
    assert crossing and all(float(r["max_gap_s"]) == pytest.approx(2.5) for r in crossing)
    assert all(float(r["max_gap_s"]) < 0.2 for r in rows if r not in crossing)
    assert float(rows[2]["invalid_fraction"]) > 0  # frames 16..31 hold the dropped frame
    assert _png_size(out / "timeline.png") == (1200, 600)

    # Same preprocessing as the pipeline: a window with invalid pixels scores identically.
    thermal = pipeline("thermal-video-classification", model=str(tiny_model_dir))
    expected = {d["label"]: d["score"] for d in thermal(str(recording), start_frame=16, top_k=14)}
    for label, score in expected.items():
        assert float(rows[2][f"prob_{label}"]) == pytest.approx(score, abs=1e-6)


def test_test_time_views_flag_answers_as_a_model_saved_with_them(tiny_model_dir, recording, tmp_path, capsys):
    """`--test_time_views 2` on a plain model == the pipeline of the same model saved with `test_time_views: 2`
    (and not the one-view answer); 8 views on a non-square image_size is refused before anything is written."""
    import json

    from transformers import pipeline

    out = tmp_path / "views2"
    assert main(["--model", str(tiny_model_dir), str(recording), "--output_dir", str(out), "--test_time_views", "2"]) == 0
    row = _rows(out / "timeline.csv")[2]
    saved = tmp_path / "model_views2"
    shutil.copytree(tiny_model_dir, saved)
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "test_time_views": 2}))
    for model, differs in ((saved, False), (tiny_model_dir, True)):
        thermal = pipeline("thermal-video-classification", model=str(model))
        scores = {d["label"]: d["score"] for d in thermal(str(recording), start_frame=16, top_k=14)}
        gap = max(abs(float(row[f"prob_{label}"]) - score) for label, score in scores.items())
        assert (gap > 1e-5) if differs else (gap < 1e-6)
    assert main(["--model", str(tiny_model_dir), str(recording), "--output_dir", str(tmp_path / "views8"),
                 "--test_time_views", "8"]) == 2
    assert "square image_size" in capsys.readouterr().err and not (tmp_path / "views8").exists()
    assert main(["--model", str(tiny_model_dir), str(recording), "--output_dir", str(tmp_path / "views3"),
                 "--test_time_views", "3"]) == 2
    assert "test_time_views must be one of (1, 2, 4, 8), got 3" in capsys.readouterr().err


def test_several_recordings_with_annotations(tiny_model_dir, recording, tmp_path):
    short = tmp_path / "SY43_R1.h5"
    with h5py.File(recording) as f, h5py.File(short, "w") as g:
        g.create_dataset("frames", data=f["frames"][:10])  # shorter than one window: padded, one window
        g.create_dataset("timestamps", data=f["timestamps"][:10])
    other = tmp_path / "SY42_R1.h5"
    shutil.copy(recording, other)
    stamps = _timestamps()
    coco = {
        "images": [{"id": "SY42_R1_a", "sensor_id": "SY42_R1", "frame_idx": 30, "timestamp": int(stamps[30])},
                   {"id": "SY42_R1_b", "sensor_id": "SY42_R1", "frame_idx": 70, "timestamp": int(stamps[70])}],
        "annotations": [{"image_id": "SY42_R1_a", "category_id": 1, "category_name": "standing"},
                        {"image_id": "SY42_R1_b", "category_id": 0, "category_name": "sitting"}],
        "categories": [{"id": 0, "name": "sitting"}, {"id": 1, "name": "standing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    assert main(["--model", str(tiny_model_dir), str(other), str(short), "--annotations", str(tmp_path / "ann.json"),
                 "--output_dir", str(out), "--stride", "16"]) == 0
    assert len(_rows(out / "SY42_R1" / "timeline.csv")) == len(window_starts(N, T, 16))
    (only,) = _rows(out / "SY43_R1" / "timeline.csv")
    assert (only["start_frame"], only["end_frame"]) == ("0", "9")
    # 10 frames edge-padded to the model's 16 (3 before): its middle slot holds frame 5
    assert only["centre_frame"] == "5" and only["centre_time_ms"] == str(stamps[5])
    for name in ("SY42_R1", "SY43_R1"):
        assert _png_size(out / name / "timeline.png") == (1200, 600)


def test_files_of_one_name_get_a_folder_each(tiny_model_dir, recording, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    paths = [recording, tmp_path / "a" / recording.name, tmp_path / f"{recording.stem}_2.h5", recording]
    for path in paths[1:3]:
        shutil.copy(recording, path)
    out = tmp_path / "out"
    assert main(["--model", str(tiny_model_dir), *map(str, paths), "--output_dir", str(out), "--stride", "64"]) == 0
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 4 and all((out / f / "timeline.csv").is_file() for f in folders), folders


def test_bad_input_is_a_clear_error(tiny_model_dir, tmp_path, capsys):
    assert main(["--model", str(tiny_model_dir), str(tmp_path / "missing.h5"), "--output_dir", str(tmp_path)]) == 2
    assert "recording not found" in capsys.readouterr().err


def test_annotations_are_checked_before_any_work_and_keyframes_past_the_end_left_out(tiny_model_dir, recording,
                                                                                     tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "nope.json"
    assert main(["--model", str(tiny_model_dir), str(recording), "--annotations", str(missing),
                 "--output_dir", str(out)]) == 2
    assert f"{missing}: cannot read COCO annotations" in capsys.readouterr().err and not out.exists()
    # keyframes of a longer recording of the same name: said and left out of the picture, not an IndexError
    coco = {"images": [{"id": "a", "sensor_id": recording.stem, "frame_idx": 5},
                       {"id": "b", "sensor_id": recording.stem, "frame_idx": N + 70}],
            "annotations": [{"image_id": "a", "category_name": "standing"}, {"image_id": "b", "category_name": "sitting"}],
            "categories": []}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    assert main(["--model", str(tiny_model_dir), str(recording), "--annotations", str(tmp_path / "ann.json"),
                 "--output_dir", str(out)]) == 0
    assert f"1 keyframe(s) of {recording.stem} outside its {N} frames (frame_idx [{N + 70}])" in capsys.readouterr().err
    assert (out / "timeline.png").is_file()


@pytest.mark.parametrize("device, expected", [("cuda", "no CUDA GPU is available"), ("cuda:1", "no CUDA GPU"),
                                               ("gpu0", "expected auto, cpu, cuda or cuda:N")])
def test_a_device_this_machine_lacks_is_a_clear_error(tiny_model_dir, recording, tmp_path, capsys, monkeypatch,
                                                     device, expected):
    import torch

    from thermal_hf.evaluate import main as evaluate_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    out = tmp_path / "out"
    assert main(["--model", str(tiny_model_dir), str(recording), "--output_dir", str(out), "--device", device]) == 2
    err = capsys.readouterr().err
    assert f"error: --device {device}: {expected}" in err and "Loading weights" not in err  # before the model loads
    assert not out.exists()
    if device == "cuda":  # evaluate ran quietly on the CPU when asked for a GPU it does not have
        assert evaluate_main(["--model", str(tiny_model_dir), "--dataset", str(tmp_path), "--output_dir", str(out),
                              "--device", "cuda"]) == 2
        assert expected in capsys.readouterr().err


@pytest.fixture
def no_hub(monkeypatch):
    """Any attempt to load a model through transformers (and so from the Hub) fails the test."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError(f"from_pretrained must not be reached: {args}")

    monkeypatch.setattr(transformers.AutoModelForVideoClassification, "from_pretrained", refuse)


def test_missing_local_model_folder_is_named_not_looked_up_on_the_hub(recording, tmp_path, monkeypatch, capsys, no_hub):
    """`outputs/run` when `outputs/` exists is a local folder: its absence is reported at once, offline."""
    from thermal_hf.errors import ThermalDataError
    from thermal_hf.predict import is_local_model_path, load_model_and_processor

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    assert main(["--model", "outputs/nonexistent", str(recording), "--output_dir", "out"]) == 2
    err = capsys.readouterr().err
    assert "no model folder at outputs/nonexistent" in err and "config.json" in err
    for name in ("outputs/nonexistent", "./run", "../run", "~/no-such-thermal-hf-model", "run/", "a/b/c", "missing"):
        assert is_local_model_path(name), name
        with pytest.raises(ThermalDataError, match=f"no model folder at {re.escape(name)}"):
            load_model_and_processor(name, device="cpu")
    # A Hub id (no local first component) still goes to the Hub.
    assert not is_local_model_path("some-org/thermal-model")


@pytest.mark.parametrize("kind", ["truncated", "json"])
def test_unreadable_recording_is_named(tiny_model_dir, recording, tmp_path, capsys, kind):
    from thermal_hf.errors import ThermalDataError

    if kind == "truncated":
        bad = tmp_path / "cut.h5"
        bad.write_bytes(recording.read_bytes()[:5000])
        h5py_says = "truncated file"
    else:
        bad = tmp_path / "annotations.json"
        bad.write_text('{"images": []}')
        h5py_says = "file signature not found"
    assert main(["--model", str(tiny_model_dir), str(bad), "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: not a readable HDF5 recording (" in err and h5py_says in err
    assert not (tmp_path / "out").exists()  # failed before the model was loaded or anything written
    with pytest.raises(ThermalDataError, match="not a readable HDF5 recording"):
        next(iter_window_batches(bad, T, 8, 4))


def test_earlier_timelines_are_kept_unless_overwrite(tiny_model_dir, recording, tmp_path, capsys):
    out = tmp_path / "timeline"
    args = ["--model", str(tiny_model_dir), str(recording), "--output_dir", str(out), "--stride", "64"]
    assert main(args) == 0
    before = (out / "timeline.csv").read_bytes()
    assert main([*args[:-1], "32"]) == 2
    err = capsys.readouterr().err
    assert f"--output_dir {out} holds earlier timelines ({out / 'timeline.csv'}" in err and "--overwrite" in err
    assert (out / "timeline.csv").read_bytes() == before
    assert main([*args[:-1], "32", "--overwrite"]) == 0
    assert len(_rows(out / "timeline.csv")) > len(before.decode().splitlines()) - 1
