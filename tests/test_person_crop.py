"""The person crop (`thermal_hf.data.person_crop`, the processor's `person_crop_size`) and the rotation augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from thermal_hf import ThermalVideoProcessor
from thermal_hf.data import person_crop
from thermal_hf.data.transforms import AugmentationConfig, augment


def _room(num_frames: int = 8) -> np.ndarray:
    clip = np.full((num_frames, 40, 60), 20.0, np.float32)
    clip[:, 10:14, 40:46] = 25.0  # a 4 x 6 person, 5 C above the floor
    clip[:, 30, 5:8] = 45.0  # a 1 x 3 hot spot (a lamp): hotter, but too small to be a person
    clip[:, 20:30, 20:30] = 22.0  # a 10 x 10 warm bed, 2 C: below the person threshold
    return clip


def test_find_person_is_the_largest_blob_above_the_threshold():
    frame = _room()[0]
    assert person_crop.person_blobs(frame) == [(11.5, 42.5)]  # lamp too small, bed not warm enough
    frame[33:37, 50:53] = 30.0  # a second, smaller person (12 pixels)
    assert person_crop.person_blobs(frame) == [(11.5, 42.5), (34.5, 51.0)]  # largest first
    assert person_crop.find_person(frame) == (11.5, 42.5)
    assert person_crop.find_person(frame, threshold=1.0) == pytest.approx((24.5, 24.5))  # bed (100 px) wins at 1 C
    assert person_crop.find_person(np.full((40, 60), 20.0, np.float32)) is None
    # with an annotated box: the blob in that box (the smaller person), not the largest
    second = [51.5 / 60, 35 / 40, 4 / 60, 6 / 40]
    assert person_crop.find_person(frame, box=second) == (34.5, 51.0)
    assert person_crop.find_person(frame, box=[0.1, 0.1, 0.05, 0.05]) is None  # nobody in that box


def test_crop_square_is_centred_and_edge_padded():
    frames = np.arange(2 * 40 * 60, dtype=np.float32).reshape(2, 40, 60)
    np.testing.assert_array_equal(person_crop.crop_square(frames, (20.0, 30.0), 8), frames[:, 16:24, 26:34])
    corner = person_crop.crop_square(frames, (0.0, 0.0), 8)  # 4 rows and columns outside the frame
    assert corner.shape == (2, 8, 8)
    np.testing.assert_array_equal(corner[:, :5, :5], np.broadcast_to(frames[:, :1, :1], (2, 5, 5)))
    np.testing.assert_array_equal(corner[:, 4:, 4:], frames[:, :4, :4])
    assert person_crop.box_centre([0.5, 0.25, 0.1, 0.1], 40, 60) == (10.0, 30.0)


def test_processor_cuts_around_the_person_and_saves_the_setting(tmp_path):
    clip = _room(8)
    processor = ThermalVideoProcessor(num_frames=8, temperature_reference="absolute", temperature_range=(0.0, 40.0),
                                      person_crop_size=8)
    pixels = processor(clip).pixel_values[0].numpy()
    assert pixels.shape == (8, 8, 8)
    hot = pixels[0] > 0.6  # 25 C -> 0.625, the floor 20 C -> 0.5
    assert hot.sum() == 24 and hot[2:6, 2:8].all()  # the 4 x 6 person, centred as rounding allows
    # a given box (a training clip labelled for that person): the blob in it, else the box's centre
    np.testing.assert_array_equal(processor.crop_to_person(clip, [43 / 60, 11 / 40, 10 / 60, 8 / 40]),
                                  person_crop.crop_square(clip, (11.5, 42.5), 8))
    np.testing.assert_array_equal(processor.crop_to_person(clip, [6 / 60, 31 / 40, 0.05, 0.05]),
                                  person_crop.crop_square(clip, (31.0, 6.0), 8))
    # nothing warm: the frame's centre
    flat = np.full((8, 40, 60), 20.0, np.float32)
    np.testing.assert_array_equal(processor.crop_to_person(flat), flat[:, 16:24, 26:34])
    processor.save_pretrained(tmp_path)
    loaded = ThermalVideoProcessor.from_pretrained(tmp_path)
    assert (loaded.person_crop_size, loaded.person_threshold) == (8, 3.0)
    np.testing.assert_array_equal(loaded(clip).pixel_values.numpy(), processor(clip).pixel_values.numpy())
    # every candidate person, largest first (the first is crop_to_person's); the frame's centre when none
    two = clip.copy()
    two[:, 33:37, 50:53] = 30.0  # a second, smaller person
    people = processor.crop_to_people(two)
    assert len(people) == 2
    np.testing.assert_array_equal(people[0], processor.crop_to_person(two))
    np.testing.assert_array_equal(people[1], person_crop.crop_square(two, (34.5, 51.0), 8))
    # as model inputs: each processed as a clip is (the largest is exactly what the processor gives for the clip)
    inputs = processor.people_clips(two)
    assert inputs.shape == (2, processor.num_frames, 8, 8) and inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs[0], processor(two).pixel_values.numpy()[0])
    (only,) = processor.crop_to_people(flat)
    np.testing.assert_array_equal(only, processor.crop_to_person(flat))
    whole = ThermalVideoProcessor(num_frames=8)
    assert whole.person_crop_size is None and whole(clip).pixel_values.shape == (1, 8, 40, 60)
    with pytest.raises(ValueError, match="person_crop_size"):
        whole.crop_to_people(clip)
    with pytest.raises(ValueError, match="person_crop_size"):
        ThermalVideoProcessor(person_crop_size=0)


def test_dataset_cuts_person_rows_around_their_blob_and_keyframe_rows_around_the_largest():
    from thermal_hf.training import data as training_data

    clip = _room(8)
    clip[:, 33:37, 50:53] = 30.0  # a second person: the annotated one of row 0, smaller than the first

    class Reader:
        columns = {"bbox": np.array([[51.5 / 60, 35 / 40, 3 / 60, 4 / 40]] * 2, np.float32),
                   "object_id": np.array([7, -1]), "label": np.array([1, 2])}

        def frames(self, index):
            return clip

    dataset = object.__new__(training_data.ThermalClipDataset)
    dataset.processor = ThermalVideoProcessor(num_frames=8, temperature_reference="absolute",
                                              temperature_range=(0.0, 40.0), person_crop_size=8)
    dataset.augmentation, dataset._reader, dataset._labels = None, Reader(), np.array([1, 2])
    dataset._person_rows = np.array([True, False])
    person, keyframe = dataset[0]["pixel_values"].numpy(), dataset[1]["pixel_values"].numpy()
    # row 0 (one annotated person): around the blob in their box, all 12 of their 30 C pixels (-> 0.75), none at 25 C
    assert np.isclose(person[0], 0.75).sum() == 12 and not np.isclose(person[0], 0.625).any()
    # row 1 (a keyframe): around the largest warm blob, the other person's 24 pixels at 25 C
    assert np.isclose(keyframe[0], 0.625).sum() == 24 and not np.isclose(keyframe[0], 0.75).any()


def test_rotation_turns_the_clip_and_its_box_reproducibly():
    clip = np.full((4, 40, 60), 20.0, np.float32)
    clip[:, 8:12, 40:50] = 30.0
    box = np.array([45 / 60, 10 / 40, 10 / 60, 4 / 40], np.float32)
    config = AugmentationConfig(random_rotation_degrees=180.0)
    assert config.enabled
    for seed in range(5):
        out, turned = augment(clip, box, config, np.random.default_rng(seed))
        again, _ = augment(clip, box, config, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, again)
        assert out.shape == clip.shape and out.dtype == np.float32
        rows, cols = np.nonzero(out[0] > 25.0)  # the warm bar lies inside the turned box
        assert rows.min() >= (turned[1] - turned[3] / 2) * 40 - 1 and rows.max() + 1 <= (turned[1] + turned[3] / 2) * 40 + 1
        assert cols.min() >= (turned[0] - turned[2] / 2) * 60 - 1 and cols.max() + 1 <= (turned[0] + turned[2] / 2) * 60 + 1
    # the other steps keep their random stream: with rotation 0 the result is the unrotated one
    flips = AugmentationConfig(horizontal_flip_prob=0.5)
    plain, _ = augment(clip, None, flips, np.random.default_rng(1))
    both, _ = augment(clip, None, AugmentationConfig(horizontal_flip_prob=0.5, random_rotation_degrees=1e-9),
                      np.random.default_rng(1))
    np.testing.assert_allclose(both, plain, atol=1e-4)
    with pytest.raises(ValueError, match="random_rotation_degrees"):
        AugmentationConfig(random_rotation_degrees=190.0)


def test_fast_paths_equal_scipy_to_the_bit():
    """`_rotate` and `person_blobs` replace per-frame / per-blob scipy calls for speed; the clips (and so every
    measured figure) must stay exactly what scipy gave."""
    from scipy import ndimage

    from thermal_hf.data.transforms import _rotate

    rng = np.random.default_rng(0)
    for shape, angle in [((16, 24, 24), 33.3), ((5, 40, 60), -171.0), ((3, 7, 11), 90.0), ((2, 24, 24), 0.0)]:
        clip = rng.normal(20.0, 3.0, size=shape).astype(np.float32)
        expected = ndimage.rotate(clip, angle, axes=(2, 1), reshape=False, order=1, mode="nearest")
        np.testing.assert_array_equal(_rotate(clip, angle), expected)
    for _ in range(20):
        frame = rng.normal(20.0, 1.5, size=(40, 60)).astype(np.float32)
        frame[rng.integers(0, 30):, rng.integers(0, 50):][:6, :8] += 5.0
        mask = frame - np.median(frame) > 3.0
        labelled, count = ndimage.label(mask)
        sizes = ndimage.sum(mask, labelled, range(1, count + 1))
        keep = sorted((i + 1 for i in range(count) if sizes[i] >= 4), key=lambda i: -sizes[i - 1])
        assert person_crop.person_blobs(frame) == [ndimage.center_of_mass(mask, labelled, i) for i in keep]


def test_crop_square_far_outside_the_frame_repeats_the_nearest_pixel():
    frames = np.arange(2 * 40 * 60, dtype=np.float32).reshape(2, 40, 60)
    far = person_crop.crop_square(frames, (-100.0, 200.0), 8)
    np.testing.assert_array_equal(far, np.broadcast_to(frames[:, :1, -1:], (2, 8, 8)))


def test_eval_target_keyframe_needs_person_targets():
    from thermal_hf.configs import DataArguments
    from thermal_hf.errors import RecipeError

    assert DataArguments(target="person", eval_target="keyframe").eval_target == "keyframe"
    with pytest.raises(RecipeError, match="'eval_target': person needs target: person"):
        DataArguments(target="keyframe", eval_target="person")
    with pytest.raises(RecipeError, match="eval_target"):
        DataArguments(eval_target="frame")
