"""ThermalVideoProcessor: inputs (numpy, torch, lists, HDF5 windows), cleaning, length fitting, round trip."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from thermal_hf import ThermalVideoProcessor
from thermal_hf.data import transforms

NUM_FRAMES = 16


def _clip(frames=NUM_FRAMES, seed=0, height=40, width=60):
    return np.random.default_rng(seed).uniform(12.0, 38.0, (frames, height, width)).astype(np.float32)


def _expected(processor, clip):
    return transforms.normalize(transforms.repair_invalid(clip, processor.invalid_floor), processor.temperature_range,
                                processor.mean, processor.std)


@pytest.fixture
def processor():
    return ThermalVideoProcessor(num_frames=NUM_FRAMES)


@pytest.fixture
def recording(tmp_path):
    """A small recording in the users' HDF5 layout (gzip, chunked, float32 Celsius)."""
    frames = _clip(frames=50, seed=3)
    path = tmp_path / "SL99_R1.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("frames", data=frames, chunks=(16, 40, 60), compression="gzip", compression_opts=4)
        handle.create_dataset("timestamps", data=np.arange(50, dtype=np.int64) * 100)
    return path, frames


def test_numpy_torch_list_and_batch_inputs_agree(processor):
    a, b = _clip(seed=0), _clip(seed=1)
    single = processor(a, return_tensors="pt").pixel_values
    assert single.shape == (1, NUM_FRAMES, 40, 60) and single.dtype == torch.float32
    torch.testing.assert_close(single[0], torch.from_numpy(_expected(processor, a)), rtol=0, atol=0)
    assert torch.equal(processor(torch.from_numpy(a)).pixel_values, single)
    assert torch.equal(processor(list(a)).pixel_values, single)  # a list of (H, W) frames is one clip
    batch = processor(np.stack([a, b])).pixel_values
    assert batch.shape == (2, NUM_FRAMES, 40, 60)
    assert torch.equal(processor([a, torch.from_numpy(b)]).pixel_values, batch)
    assert torch.equal(batch[0], single[0])
    as_numpy = processor(a, return_tensors="np").pixel_values
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32


def test_invalid_pixels_are_repaired_not_clipped(processor):
    clip = _clip()
    broken = clip.copy()
    broken[5, 10:20, 10:30] = -273.2
    broken[6, 0, 0] = np.nan
    out = processor(broken).pixel_values[0].numpy()
    assert np.isfinite(out).all()
    # The dead tile takes the same pixels from the nearest valid frame (frame 4, tie goes earlier), not 5 C.
    low = processor.temperature_range[0]
    span = processor.temperature_range[1] - low
    np.testing.assert_allclose(out[5, 10:20, 10:30], (clip[4, 10:20, 10:30] - low) / span, rtol=1e-6)
    assert out[5, 10:20, 10:30].min() > 0.0
    np.testing.assert_array_equal(processor.clean(broken), transforms.repair_invalid(broken, -50.0))


def test_a_clip_without_a_valid_pixel_is_warned_about(processor):
    from transformers.testing_utils import CaptureLogger

    from thermal_hf.models.thermal_slowfast import video_processing_thermal_slowfast as module

    with CaptureLogger(module.logger) as partly:
        broken = _clip()
        broken[:, :5] = -273.2
        processor(broken)
    assert "no valid pixel" not in partly.out
    with CaptureLogger(module.logger) as dead:
        out = processor(np.full_like(_clip(), np.nan)).pixel_values
    assert "no valid pixel" in dead.out and torch.isfinite(out).all()


def test_kelvin_clips_and_other_window_lengths_are_warned_about(processor):
    from transformers.testing_utils import CaptureLogger

    from thermal_hf.models.thermal_slowfast import video_processing_thermal_slowfast as module

    with CaptureLogger(module.logger) as celsius:
        processor([_clip(), _clip()])
    assert "degrees Celsius" not in celsius.out and "differs from" not in celsius.out
    with CaptureLogger(module.logger) as kelvin:
        processor([_clip(), _clip() + 273.15])
    assert "1 of 2 clips (first: number 1) has a median of" in kelvin.out and "subtract 273.15" in kelvin.out
    module.logger.warning_once.cache_clear()  # said once per process: this test must see it
    with CaptureLogger(module.logger) as longer:
        processor(_clip(frames=40), num_frames=2 * NUM_FRAMES)
    assert f"num_frames={2 * NUM_FRAMES} differs from the {NUM_FRAMES} frames this processor was saved" in longer.out


def test_clips_of_another_length_are_fitted_with_a_warning(processor):
    from transformers.testing_utils import CaptureLogger

    from thermal_hf.models.thermal_slowfast import video_processing_thermal_slowfast as module

    module.logger.warning_once.cache_clear()
    with CaptureLogger(module.logger) as fitting:
        assert processor(_clip())["pixel_values"].shape[1] == NUM_FRAMES
    assert fitting.out == ""  # a clip of the processor's length is what the model was trained on
    cases = ((NUM_FRAMES - 6, {}, f"a clip of {NUM_FRAMES - 6} frames is padded to num_frames={NUM_FRAMES} by "
              "repeating its first and last frames"),
             (NUM_FRAMES + 8, {}, f"a clip of {NUM_FRAMES + 8} frames is cut to its centre {NUM_FRAMES} frames"),
             (NUM_FRAMES + 9, {"do_sample_frames": True},
              f"a clip of {NUM_FRAMES + 9} frames is evenly subsampled to {NUM_FRAMES} (do_sample_frames"))
    for frames, kwargs, expected in cases:
        with CaptureLogger(module.logger) as fitting:
            assert processor(_clip(frames=frames), **kwargs)["pixel_values"].shape[1] == NUM_FRAMES
        assert expected in fitting.out


def test_fit_length_rules(processor):
    long_clip = np.arange(40, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    sampled = processor.fit_length(long_clip, NUM_FRAMES, do_sample_frames=True)[:, 0, 0]
    np.testing.assert_array_equal(sampled, np.arange(0, 40, 40 / 16).astype(int))
    centre = processor.fit_length(long_clip, NUM_FRAMES, do_sample_frames=False)[:, 0, 0]
    np.testing.assert_array_equal(centre, np.arange(12, 28))
    short = processor.fit_length(long_clip[:10], NUM_FRAMES)[:, 0, 0]
    np.testing.assert_array_equal(short, [0, 0, 0] + list(range(10)) + [9, 9, 9])
    exact = processor.fit_length(long_clip[:16])
    assert exact.shape[0] == 16


def test_clips_of_different_lengths_are_each_fitted(processor):
    out = processor([_clip(frames=10), _clip(frames=16), _clip(frames=40)], return_tensors="pt").pixel_values
    assert out.shape == (3, NUM_FRAMES, 40, 60)


def test_pipeline_style_call(processor):
    """What `pipeline("video-classification")` sends: a long clip, num_frames, do_sample_frames=True."""
    clip = _clip(frames=64)
    out = processor(clip, num_frames=NUM_FRAMES, do_sample_frames=True, return_tensors="pt").pixel_values
    assert out.shape == (1, NUM_FRAMES, 40, 60)
    expected = _expected(processor, clip)[np.arange(0, 64, 4)]
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_hdf5_windows_match_array_inputs(processor, recording):
    path, frames = recording
    by_start = processor(str(path), start_frame=5).pixel_values
    assert torch.equal(by_start, processor(frames[5:21]).pixel_values)
    by_keyframe = processor(path, keyframe_index=20).pixel_values  # 8 before, keyframe, 7 after
    assert torch.equal(by_keyframe, processor(frames[12:28]).pixel_values)
    batch = processor([path, path], keyframe_index=[20, 2]).pixel_values
    assert torch.equal(batch[0], by_keyframe[0])
    # Window crossing the start: padded by repeating frame 0 (6 copies before frames 0..9).
    padded = np.concatenate([np.repeat(frames[:1], 6, axis=0), frames[:10]])
    assert torch.equal(batch[1], processor(padded).pixel_values[0])
    # Window crossing the end, from a start frame.
    end = processor(path, start_frame=45).pixel_values
    padded_end = np.concatenate([frames[45:], np.repeat(frames[-1:], 11, axis=0)])
    assert torch.equal(end, processor(padded_end).pixel_values)
    whole = processor(path, do_sample_frames=True).pixel_values
    assert torch.equal(whole, processor(frames, do_sample_frames=True).pixel_values)


def test_bad_inputs_raise_clear_errors(processor, recording):
    path, _ = recording
    with pytest.raises(ValueError, match="outside"):
        processor(path, keyframe_index=50)
    with pytest.raises(ValueError, match="not both"):
        processor(path, keyframe_index=3, start_frame=3)
    with pytest.raises(ValueError, match="HDF5"):
        processor(_clip(), start_frame=0)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        processor(np.zeros((2, 2, 3, 4, 5), np.float32))
    with pytest.raises(FileNotFoundError):
        processor(path.with_name("missing.h5"))


@pytest.mark.parametrize("kind, expected", [("not_hdf5", "not a readable HDF5 recording"),
                                            ("empty", "'frames' holds no frame"),
                                            ("strings", "expected numbers")])
def test_unreadable_recordings_are_named(processor, tmp_path, kind, expected):
    import h5py

    path = tmp_path / f"{kind}.h5"
    if kind == "not_hdf5":
        path.write_text("# a README, not a recording\n")
    else:
        with h5py.File(path, "w") as f:
            if kind == "empty":
                f["frames"] = np.zeros((0, 40, 60), np.float32)
            else:
                f["frames"] = np.full((4, 2, 3), "x", dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match=expected) as err:
        processor(path)
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match="temperature_range"):
        ThermalVideoProcessor(temperature_range=(40.0, 5.0))
    with pytest.raises(ValueError, match="mean and std"):
        ThermalVideoProcessor(mean=0.3)


def test_standardisation_with_mean_std():
    processor = ThermalVideoProcessor(num_frames=NUM_FRAMES, mean=0.3, std=0.2, temperature_range=(0.0, 40.0))
    clip = _clip()
    out = processor(clip).pixel_values[0].numpy()
    np.testing.assert_allclose(out, ((np.clip(clip, 0, 40) / 40) - 0.3) / 0.2, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip(tmp_path):
    from transformers import AutoVideoProcessor

    processor = ThermalVideoProcessor(num_frames=32, invalid_floor=-40.0, temperature_range=(0.0, 50.0), mean=0.4,
                                      std=0.25, do_sample_frames=True)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "video_preprocessor_config.json").is_file()
    for loaded in (ThermalVideoProcessor.from_pretrained(tmp_path), AutoVideoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is ThermalVideoProcessor
        assert loaded.to_dict() == processor.to_dict()
        assert loaded.temperature_range == (0.0, 50.0)
        clip = _clip(frames=40)
        assert torch.equal(loaded(clip).pixel_values, processor(clip).pixel_values)


def test_real_recording_window(real_data_root):
    """On a real gzip recording: the keyframe window read by the processor is the users' 32 + 1 + 31 frames."""
    path = sorted((real_data_root / "frames").glob("*.h5"))[0]
    processor = ThermalVideoProcessor()  # 64 frames
    with h5py.File(path, "r") as handle:
        window = handle["frames"][100 - 32 : 100 + 32]
    out = processor(path, keyframe_index=100).pixel_values
    assert out.shape == (1, 64, 40, 60)
    np.testing.assert_array_equal(out[0].numpy(), _expected(processor, window))
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_colour_axes_and_ambiguous_batches_are_refused(processor):
    """A (T, H, W, C) or (T, C, H, W) clip is refused by name, not read as T clips of H frames."""
    clip = _clip()
    for bad in (np.repeat(clip[..., None], 3, -1), clip[..., None], np.repeat(clip[:, None], 3, 1), clip[:, None]):
        with pytest.raises(ValueError, match="colour channel"):
            processor(bad)
        with pytest.raises(ValueError, match="colour channel"):
            processor(torch.from_numpy(bad))
    with pytest.raises(ValueError, match="colour channel"):
        processor([clip, np.repeat(clip[..., None], 3, -1)[0]])  # a (H, W, 3) frame stack as a list item
    assert processor(np.stack([clip, clip])).pixel_values.shape == (2, NUM_FRAMES, 40, 60)  # a real batch still works


def test_a_batch_array_through_the_stock_pipeline_rule_is_warned_about(processor):
    from transformers.testing_utils import CaptureLogger

    from thermal_hf.models.thermal_slowfast import video_processing_thermal_slowfast as module

    batch = np.stack([_clip(), _clip(seed=1)])
    with CaptureLogger(module.logger) as direct:
        processor(batch)
    assert "first" not in direct.out
    with CaptureLogger(module.logger) as stock:  # the stock pipeline's call
        processor(batch, num_frames=NUM_FRAMES, do_sample_frames=True)
    assert "answers only its first clip" in stock.out


def test_call_time_settings_override_for_that_call_only(processor):
    clip = _clip()
    default = processor(clip).pixel_values
    wider = processor(clip, temperature_range=(0.0, 50.0)).pixel_values
    np.testing.assert_allclose(wider[0].numpy(), transforms.normalize(clip, (0.0, 50.0), None, None), rtol=1e-6)
    assert not torch.equal(default, wider)
    assert processor.temperature_range == (5.0, 45.0) and torch.equal(processor(clip).pixel_values, default)
    relative = processor(clip, temperature_reference="clip_median").pixel_values  # takes that reference's range
    expected = transforms.normalize(clip, transforms.default_temperature_range("clip_median"), None, None,
                                    reference="clip_median")
    np.testing.assert_allclose(relative[0].numpy(), expected, rtol=1e-6)
    standardised = processor(clip, mean=0.5, std=0.1).pixel_values
    np.testing.assert_allclose(standardised.numpy(), (default.numpy() - 0.5) / 0.1, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="temperature_range"):
        processor(clip, temperature_range=(10.0, 5.0))


def test_bfloat16_tensors_and_integer_positions(processor, recording):
    clip = torch.from_numpy(_clip())
    out = processor(clip.bfloat16()).pixel_values
    assert torch.equal(out, processor(clip.bfloat16().float()).pixel_values)
    path, _ = recording
    assert torch.equal(processor(path, keyframe_index=np.int64(20)).pixel_values,
                       processor(path, keyframe_index=20.0).pixel_values)
    with pytest.raises(TypeError, match="integer frame index"):
        processor(path, keyframe_index=20.5)


def test_a_whole_recording_subsampled_sparser_than_training_is_warned_about(processor, recording):
    from transformers.testing_utils import CaptureLogger

    from thermal_hf.models.thermal_slowfast import video_processing_thermal_slowfast as module

    path, _ = recording
    with CaptureLogger(module.logger) as window:
        processor(path, keyframe_index=20, do_sample_frames=True)
        processor(path)  # the processor's own rule: the centre frames, as dense as training
    assert "evenly subsampled" not in window.out
    with CaptureLogger(module.logger) as whole:
        processor(path, do_sample_frames=True)  # what the stock pipeline asks for
    assert "evenly subsampled to 16 frames" in whole.out and "thermal-video-classification" in whole.out
