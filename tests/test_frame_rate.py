"""`frame_rate`: windows resampled on the recordings' timestamps, the same in conversion, processor and predict."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import TINY_NUM_FRAMES

from thermal_hf.data.windows import nearest_frames, time_window_indices

T = TINY_NUM_FRAMES
# Bursts 35 ms apart, then gaps of up to 1.8 s: the timing of the real sensors.
STAMPS = np.array([0, 35, 70, 105, 1000, 1035, 1070, 2000, 2200, 2400], dtype=np.int64)


def test_nearest_frames_ties_go_to_the_earlier_frame():
    assert nearest_frames(STAMPS, [-500, 0, 17, 18, 52.5, 600, 3000]).tolist() == [0, 0, 0, 1, 1, 4, 9]
    assert nearest_frames(STAMPS[:1], [5, -5]).tolist() == [0, 0]


def test_time_window_centres_the_keyframe_and_counts_padding():
    # 5 frames/s around frame 4 (t = 1000 ms): instants 200, 400, ..., 1600 ms; the burst is thinned out, the gap
    # between 1070 and 2000 ms repeats its neighbours.
    idx, before, after = time_window_indices(STAMPS, 4, 8, 5.0)
    assert idx.tolist() == [3, 3, 4, 4, 4, 6, 6, 7]
    assert idx[8 // 2] == 4 and (before, after) == (0, 0)
    idx, before, after = time_window_indices(STAMPS, 9, 6, 2.0)  # 900 .. 3400 ms: two instants past the end
    assert idx.tolist() == [4, 6, 7, 9, 9, 9] and (before, after) == (0, 2)
    idx, before, after = time_window_indices(STAMPS, 0, 4, 10.0, anchor="start")
    assert idx.tolist() == [0, 3, 3, 3] and (before, after) == (0, 0)


@pytest.mark.parametrize("args, message", [
    ((STAMPS, 10, 4, 5.0), "outside the recording"),
    ((STAMPS, 0, 4, 0.0), "frame_rate"),
    ((STAMPS[::-1], 0, 4, 5.0), "non-decreasing"),
])
def test_time_window_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        time_window_indices(*args)


def test_conversion_resamples_windows_and_keys_its_cache(synthetic_root, tmp_path):
    from thermal_hf.data.convert import conversion_cache_key, convert_dataset, load_converted

    report = convert_dataset(synthetic_root, tmp_path / "ds", num_frames=T, frame_rate=4.0, target="keyframe")
    assert report.options["frame_rate"] == 4.0
    train = load_converted(tmp_path / "ds")["train"].with_format("numpy")
    row = train[3]
    with h5py.File(synthetic_root / "frames" / f"{row['recording']}.h5") as f:
        frames, stamps = f["frames"][:], f["timestamps"][:]
    idx, _, _ = time_window_indices(stamps, int(row["keyframe_index"]), T, 4.0)
    np.testing.assert_array_equal(row["frames"], frames[idx])
    np.testing.assert_array_equal(row["timestamps"], stamps[idx])
    # A dataset converted before the option existed keeps its cache key; a rate makes a new one.
    assert conversion_cache_key(synthetic_root) == conversion_cache_key(synthetic_root, frame_rate=None)
    assert conversion_cache_key(synthetic_root, frame_rate=4.0) != conversion_cache_key(synthetic_root)


def test_recipe_rejects_a_bad_frame_rate():
    from thermal_hf.configs import DataArguments
    from thermal_hf.errors import RecipeError

    with pytest.raises(RecipeError, match="frame_rate"):
        DataArguments(frame_rate=0.0)
    assert DataArguments(frame_rate=6).conversion_options()["frame_rate"] == 6


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    steps = rng.choice([35, 35, 35, 160, 900], size=120).astype(np.int64)
    steps[0] = 0
    frames = (17.0 + np.arange(120, dtype=np.float32)[:, None, None] / 10 + np.zeros((120, 40, 60), np.float32))
    path = tmp_path_factory.mktemp("rec") / "SY07_R1.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames, chunks=(8, 40, 60))
        f.create_dataset("timestamps", data=1_700_000_000_000 + np.cumsum(steps))
    return path


def test_processor_reads_recordings_at_its_frame_rate(recording, tmp_path):
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor

    with h5py.File(recording) as f:
        frames, stamps = f["frames"][:], f["timestamps"][:]
    processor = ThermalVideoProcessor(num_frames=T, frame_rate=3.0)
    processor.save_pretrained(tmp_path / "proc")
    assert ThermalVideoProcessor.from_pretrained(tmp_path / "proc").frame_rate == 3.0
    centred, _, _ = time_window_indices(stamps, 60, T, 3.0)
    np.testing.assert_array_equal(processor.read_recording(recording, keyframe_index=60), frames[centred])
    started, _, _ = time_window_indices(stamps, 10, T, 3.0, anchor="start")
    np.testing.assert_array_equal(processor.read_recording(recording, start_frame=10), frames[started])
    middle = processor.read_recording(recording)  # T / 3 s around the recording's middle instant
    mid = nearest_frames(stamps, [(stamps[0] + stamps[-1]) / 2])[0]
    assert middle[T // 2, 0, 0] == frames[mid, 0, 0]
    # Without a rate: consecutive frames, as before.
    np.testing.assert_array_equal(ThermalVideoProcessor(num_frames=T).read_recording(recording, start_frame=10),
                                  frames[10 : 10 + T])

    bare = tmp_path / "no_stamps.h5"
    with h5py.File(bare, "w") as f:
        f.create_dataset("frames", data=frames)
    with pytest.raises(ValueError, match="no_stamps.h5.*timestamps"):
        processor.read_recording(bare, keyframe_index=5)


def test_predict_slides_time_windows(tiny_model_dir, recording, tmp_path):
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
    from thermal_hf.predict import main, time_window_plan

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    ThermalVideoProcessor(num_frames=T, frame_rate=2.0).save_pretrained(model_dir)
    with h5py.File(recording) as f:
        stamps = f["timestamps"][:]
    plan = time_window_plan(stamps, T, 2.0, stride=4)
    step_ms = 500.0
    starts = stamps[0] + np.arange(len(plan) - 1) * 4 * step_ms
    # Windows start every stride / frame_rate s and the last one ends at the recording's last instant.
    np.testing.assert_array_equal(plan[:-1, 0], nearest_frames(stamps, starts))
    assert plan[-1, -1] == len(stamps) - 1
    # Each window is the one the processor (and the thermal pipeline) reads from its start frame.
    processor = ThermalVideoProcessor(num_frames=T, frame_rate=2.0)
    for idx in plan:
        np.testing.assert_array_equal(processor._time_indices(stamps, T, int(idx[0]), None, False), idx)

    out = tmp_path / "out"
    assert main(["--model", str(model_dir), str(recording), "--stride", "4", "--batch_size", "3",
                 "--output_dir", str(out), "--device", "cpu"]) == 0
    with open(out / "timeline.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(plan)
    for row, idx in zip(rows, plan):
        assert (int(row["start_frame"]), int(row["end_frame"]), int(row["centre_frame"])) == \
            (idx[0], idx[-1], idx[T // 2])
        assert int(row["centre_time_ms"]) == stamps[idx[T // 2]]


def test_the_recipes_rate_reaches_the_saved_processor_and_evaluation(tiny_model_dir, tmp_path):
    from thermal_hf.evaluate import training_conversion_options
    from thermal_hf.models.thermal_slowfast import ThermalSlowFastConfig, ThermalVideoProcessor
    from thermal_hf.parser import parse_recipe
    from thermal_hf.train import build_processor

    recipe = Path(__file__).parent / "recipes" / "tiny.yaml"
    model_args, data_args, _ = parse_recipe([str(recipe), "--frame_rate", "4", "--output_dir", str(tmp_path)]).as_tuple()
    processor = build_processor(model_args, data_args, None)
    assert processor.frame_rate == 4.0
    processor.save_pretrained(tmp_path / "model")
    assert ThermalVideoProcessor.from_pretrained(tmp_path / "model").frame_rate == 4.0

    class _Model:  # only the config is read
        config = ThermalSlowFastConfig.from_pretrained(tiny_model_dir)

    # Evaluating on a raw folder converts it at the model's own rate.
    assert training_conversion_options(tiny_model_dir, _Model(), processor)["frame_rate"] == 4.0
    # A model of consecutive frames asks for them (none), so a resampled folder is refused rather than scored.
    assert training_conversion_options(tiny_model_dir, _Model(), ThermalVideoProcessor())["frame_rate"] is None


def test_a_recording_shorter_than_one_window_gives_one_centred_window():
    from thermal_hf.predict import time_window_plan

    stamps = np.arange(0, 3000, 100)  # 3 s; a window at 2 frames/s x 16 spans 7.5 s
    plan = time_window_plan(stamps, 16, 2.0, stride=4)
    assert plan.shape == (1, 16)
    assert plan[0, 8] == 14  # the slot num_frames // 2 is the middle instant (1450 ms: 1400 and 1500 tie, earlier wins)
    assert plan[0, 0] == 0 and plan[0, -1] == len(stamps) - 1  # edge frames repeat
    from thermal_hf.models.thermal_slowfast import (
        ThermalVideoProcessor,  # the processor's whole-recording read
    )

    np.testing.assert_array_equal(ThermalVideoProcessor(num_frames=16, frame_rate=2.0)._time_indices(
        stamps, 16, None, None, False), plan[0])
    with pytest.raises(ValueError, match="stride"):
        time_window_plan(stamps, 16, 2.0, stride=0)


def test_training_items_equal_what_inference_reads_from_the_recording(synthetic_root, tmp_path):
    """A converted window and the processor's read of the same keyframe are the same model input."""
    from thermal_hf.data.convert import convert_dataset, load_converted
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
    from thermal_hf.training.data import ThermalClipDataset

    convert_dataset(synthetic_root, tmp_path / "ds", num_frames=T, frame_rate=3.0, target="keyframe")
    split = load_converted(tmp_path / "ds")["validation"]
    processor = ThermalVideoProcessor(num_frames=T, frame_rate=3.0, temperature_reference="clip_median")
    items = ThermalClipDataset(split, processor, train=False)
    for i in range(0, len(split), max(1, len(split) // 5)):
        row = split[i]
        recording = synthetic_root / "frames" / f"{row['recording']}.h5"
        served = processor(str(recording), keyframe_index=row["keyframe_index"], return_tensors="pt")["pixel_values"]
        np.testing.assert_array_equal(served[0].numpy(), items[i]["pixel_values"].numpy())
