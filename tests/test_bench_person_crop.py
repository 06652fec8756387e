"""The person crop of `bench/exp_person_crop.py` (an experiment script, checked so it cannot rot)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def crop():
    path = Path(__file__).resolve().parents[1] / "bench" / "exp_person_crop.py"
    spec = importlib.util.spec_from_file_location("exp_person_crop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blob_centre_finds_the_largest_warm_blob(crop):
    frame = np.full((40, 60), 20.0, np.float32)
    frame[10:14, 40:46] = 25.0  # a 4 x 6 person
    frame[30, 5] = 25.0  # one warm pixel: smaller, ignored
    assert crop.blob_centre(frame) == pytest.approx((11.5, 42.5))
    assert crop.blob_centre(np.full((40, 60), 20.0, np.float32)) is None


def test_cut_reader_cuts_around_the_annotated_box(crop):
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
    from thermal_hf.training import data as training_data

    clip = np.full((16, 40, 60), 20.0, np.float32)
    clip[:, 30:34, 50:54] = 30.0  # the person, in the bottom-right corner

    class Reader:
        columns = {"bbox": np.array([[52 / 60, 32 / 40, 4 / 60, 4 / 40]], np.float32)}  # YOLO cx, cy, w, h

        def frames(self, index):
            return clip

    dataset = object.__new__(training_data.ThermalClipDataset)
    dataset.processor = ThermalVideoProcessor(num_frames=16, temperature_reference="absolute", temperature_range=(0, 40), mean=0.0, std=1.0)
    dataset.augmentation, dataset._reader, dataset._labels = None, Reader(), np.array([3])
    crop.crop_reader(dataset, "annotation", 8)
    item = dataset[0]  # the dataset's own __getitem__: fit_length, normalize on the cut
    assert item["labels"] == 3
    assert tuple(item["pixel_values"].shape) == (16, 8, 8)
    hot = item["pixel_values"][0] > 0.5  # 30 C -> 0.75, 20 C -> 0.5
    assert hot[2:6, 2:6].all() and hot.sum() == 16  # the 4 x 4 person sits in the middle of the 8 x 8 cut


def test_experiments_write_beside_the_plain_recipe_not_over_it(crop):
    # The plain recipe's folder holds runs the benchmark would reuse for a patched experiment (same recipe.yaml).
    from exp_common import with_experiment_output  # bench/ is on sys.path once an experiment script is loaded

    argv = ["recipes/thermal_native.yaml", "--protocol", "grouped", "--seeds", "3", "--", "--image_size", "48", "48"]
    assert with_experiment_output(argv, "crop_blob24") == [
        *argv[:5], "--output", str(Path("outputs/benchmark/thermal_native-crop_blob24/grouped")), *argv[5:]]
    given = ["recipes/thermal_native.yaml", "--protocol", "grouped", "--output", "mine"]
    assert with_experiment_output(given, "crop_blob24") == given
    assert with_experiment_output(["recipes/x.yaml", "--protocol", "random"], "v") == ["recipes/x.yaml", "--protocol", "random"]


def test_experiments_run_the_whole_room_recipe_under_their_own_overrides(crop):
    # The experiments patch the whole-room recipe they measured; today's recipe crops around the person itself.
    from exp_common import WHOLE_ROOM, with_whole_room

    from thermal_hf.benchmark import parse

    argv = with_whole_room(["recipes/thermal_native.yaml", "--protocol", "grouped", "--", "--target", "person"])
    assert argv == ["recipes/thermal_native.yaml", "--protocol", "grouped", "--", *WHOLE_ROOM, "--target", "person"]
    assert with_whole_room(["r.yaml"]) == ["r.yaml", "--", *WHOLE_ROOM]
    parsed = parse(["recipes/thermal_native.yaml", *WHOLE_ROOM, "--target", "person"])
    assert parsed.model_args.person_crop_size is None and list(parsed.model_args.image_size) == [40, 60]
    assert parsed.data_args.random_rotation_degrees == 0 and parsed.data_args.eval_target is None
    assert parsed.data_args.target == "person"  # the experiment's own override wins
