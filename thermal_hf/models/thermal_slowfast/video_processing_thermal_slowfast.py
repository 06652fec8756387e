"""Video processor for raw thermal clips: invalid-pixel repair, temporal length, temperature normalisation.

Every path into the model (training dataset, evaluation, `pipeline("video-classification")`, streaming
prediction) goes through this class; the numeric work itself is `thermal_hf.data.transforms` (one
implementation). Spatial resizing is *not* done here: the model resizes on the device.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from transformers.processing_utils import VideosKwargs
from transformers.utils import logging
from transformers.video_processing_utils import BaseVideoProcessor

from ...data import person_crop, transforms
from ...errors import ThermalDataError

logger = logging.get_logger(__name__)

#: Names of the frame and timestamp datasets inside a recording's HDF5 file.
H5_FRAMES_KEY = "frames"
H5_TIMESTAMPS_KEY = "timestamps"


def open_recording(path):
    """``h5py.File(path, "r")``; a file h5py cannot open (truncated, not HDF5) is an error naming it."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:  # h5py's own message ("file signature not found") does not say which file
        raise ThermalDataError(f"{path}: not a readable HDF5 recording ({err})") from None


def recording_frames(handle, path):
    """The open recording's ``frames`` dataset: numbers ``[N, H, W]`` (degrees Celsius), at least one frame."""
    if H5_FRAMES_KEY not in handle:
        raise ThermalDataError(f"{path}: no '{H5_FRAMES_KEY}' dataset; expected numbers [N, H, W] (degrees Celsius)")
    dataset = handle[H5_FRAMES_KEY]
    if dataset.ndim != 3 or not np.issubdtype(dataset.dtype, np.number):
        raise ThermalDataError(f"{path}: '{H5_FRAMES_KEY}' is {dataset.dtype} of shape {dataset.shape}, expected "
                               "numbers [N, H, W] (degrees Celsius)")
    if dataset.shape[0] == 0:
        raise ThermalDataError(f"{path}: '{H5_FRAMES_KEY}' holds no frame")
    return dataset


def read_timestamps(handle, path, total: int, frame_rate: float) -> np.ndarray:
    """The open recording's timestamps (int64 ms), checked for resampling windows at ``frame_rate``."""
    if H5_TIMESTAMPS_KEY not in handle or handle[H5_TIMESTAMPS_KEY].shape != (total,):
        raise ThermalDataError(
            f"{path}: windows are resampled at {frame_rate:g} frames/s (the processor's frame_rate), which needs a "
            f"'{H5_TIMESTAMPS_KEY}' dataset int64 [{total}] in milliseconds, one per frame"
        )
    stamps = np.asarray(handle[H5_TIMESTAMPS_KEY][:], dtype=np.int64)
    if total > 1 and np.any(np.diff(stamps) < 0):
        raise ThermalDataError(f"{path}: '{H5_TIMESTAMPS_KEY}' go backwards; expected non-decreasing milliseconds")
    return stamps


class ThermalVideosKwargs(VideosKwargs, total=False):
    """Keyword arguments `ThermalVideoProcessor` accepts on top of the stock video ones. The settings (all but
    `start_frame` / `keyframe_index`) override the processor's own for that call only, as in `transformers`."""

    invalid_floor: float | None
    temperature_range: tuple[float, float] | list[float] | None
    temperature_reference: str | None
    mean: float | None
    std: float | None
    frame_rate: float | None
    person_crop_size: int | None
    person_threshold: float | None
    start_frame: int | Sequence[int] | None
    keyframe_index: int | Sequence[int] | None


def window_position(name: str, value: Any) -> int:
    """A frame index given as ``start_frame`` / ``keyframe_index``: an integer (numpy integers too), never a float
    silently truncated."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer frame index, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise TypeError(f"{name} must be an integer frame index, got {value!r}") from None


def whole_number(name: str, value: Any) -> int:
    """A count (``num_frames``, ``person_crop_size``) given as an integer or an integral float, never truncated."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise TypeError(f"{name} must be a whole number, got {value!r}") from None


def _nested_list(value: Any) -> Any:
    """A nested Python list of numbers (a frame or a clip) as an array; anything else (a path, an array) as is."""
    if not isinstance(value, (list, tuple)):
        return value
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):  # ragged, or holding paths: reported by the caller
        return value
    return array


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's values as numpy; dtypes numpy lacks (bfloat16, float8) become float32."""
    tensor = tensor.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:
        return tensor.float().numpy()


def check_clip_layout(clip: np.ndarray, where: str) -> None:
    """Refuse clips with a colour axis: a `(T, H, W, C)` clip would otherwise be read as `T` clips of `H` frames (no
    thermal frame is 1 or 3 pixels wide), a `(T, C, H, W)` one as `T` clips of `C` frames."""
    if clip.ndim >= 3 and clip.shape[-1] in (1, 3):
        raise ValueError(
            f"{where} has shape {tuple(clip.shape)}: its last axis looks like {clip.shape[-1]} colour channel(s). "
            "A thermal clip is (T, H, W) degrees Celsius, one value per pixel: pass clip[..., 0]"
        )
    if clip.ndim == 4 and clip.shape[1] in (1, 3):
        raise ValueError(
            f"{where} has shape {tuple(clip.shape)}: a (B, T, H, W) batch of {clip.shape[1]}-frame clips, or a "
            f"(T, C, H, W) clip with {clip.shape[1]} colour channel(s)? A thermal clip is (T, H, W) degrees Celsius: "
            "pass clip[:, 0], or a list of clips"
        )


#: A clip whose median is above this is not in degrees Celsius (Kelvin reads 290-310 in a room): warned about.
NOT_CELSIUS_MEDIAN = 100.0


class ThermalVideoProcessor(BaseVideoProcessor):
    r"""
    Turns raw thermal clips (degrees Celsius) into the model's `pixel_values` `(B, T, H, W)` float32.

    Steps, per clip: `clean` (invalid pixels -- below `invalid_floor`, NaN, inf, e.g. the sensor's -273.2
    dropout marker -- repaired from the same pixel in the nearest valid frame, see
    `thermal_hf.data.transforms.repair_invalid`) -> `crop_to_person` (only with `person_crop_size`) ->
    `fit_length` (to `num_frames`) -> `normalize` (clip to
    `temperature_range`, scale to 0..1, then `(x - mean) / std` if both are set).

    `fit_length` rules (documented because the stock pipeline forces `do_sample_frames=True`):
    - a clip of exactly `num_frames` is untouched;
    - a longer clip is evenly subsampled over its whole length when `do_sample_frames` is true (the
      `transformers` default rule, `arange(0, T, T / num_frames)`), else its centre `num_frames` are kept
      (same frame rate as training windows);
    - a shorter clip is padded by repeating its first and last frames, split evenly before/after so that the
      clip's centre stays the window's centre.
    An array clip that is subsampled, cut or padded is warned about (once per length and process); windows read
    from recordings always have `num_frames` frames.

    Args:
        num_frames (`int`, *optional*, defaults to 64): frames per clip given to the model.
        invalid_floor (`float`, *optional*, defaults to -50.0): temperatures below this are invalid pixels.
        temperature_range (`tuple[float, float]`, *optional*): Celsius range mapped to 0..1 (values outside
            are clipped). Defaults to `(5.0, 45.0)`, or `(-5.0, 15.0)` with `temperature_reference="clip_median"`.
        temperature_reference (`str`, *optional*, defaults to `"absolute"`): `"absolute"`, or `"clip_median"`:
            temperatures are taken relative to the clip's median (the room), and `temperature_range` is relative
            too (e.g. `(-4, 12)`); see `thermal_hf.data.transforms.normalize`.
        mean (`float`, *optional*): mean of the 0..1-scaled clips, for standardisation (with `std`).
        std (`float`, *optional*): standard deviation of the 0..1-scaled clips.
        do_sample_frames (`bool`, *optional*, defaults to `False`): how longer clips are shortened (above).
        frame_rate (`float`, *optional*): frames per second of the model's clips. `None` (default): a clip is
            consecutive recorded frames. Set (the recipe's `frame_rate`, which resampled the training windows):
            windows read from a recording are resampled on its `timestamps` the same way, `num_frames` instants
            `1 / frame_rate` s apart, each the nearest recorded frame (`thermal_hf.data.windows`). An array
            input has no timestamps and is taken as already at this rate.
        person_crop_size (`int`, *optional*): side, in sensor pixels, of a square cut around the person in every
            clip (the same square in every frame, after `clean`, before `fit_length`), which the model then
            resizes to its `image_size`. `None` (default): the whole frame. The person is the largest blob
            warmer than the median of the clip's middle frame by `person_threshold` (`find_person`), or, for
            training clips labelled for one annotated person, the blob in that person's box; the frame's (or
            the box's) centre when nothing is that warm. See `thermal_hf.data.person_crop`.
        person_threshold (`float`, *optional*, defaults to 3.0): Celsius above the frame's median that a person's
            pixels are (only with `person_crop_size`).

    Inputs (`videos`): a numpy array or torch tensor `(T, H, W)` (one clip) or `(B, T, H, W)` (a batch); a
    list of clips (lengths may differ; each is fitted to `num_frames`); a list of `(H, W)` frames (one clip);
    or a `str`/`Path` to an HDF5 recording (or a list of them), read lazily: with `start_frame` the window
    `[start_frame, start_frame + num_frames)`, with `keyframe_index` the centred window (`num_frames // 2`
    frames before the keyframe), each padded by repeating edge frames where it crosses the file's ends;
    only the needed rows are read. A recording with neither is read whole and fitted like an array. With a
    `frame_rate` these windows are instants on the file's `timestamps` instead: from `start_frame`'s time, around
    `keyframe_index`'s time, or (neither) `num_frames` instants evenly over the recording with
    `do_sample_frames`, else `num_frames / frame_rate` s around its middle.
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = ThermalVideosKwargs

    #: Keys written to `video_preprocessor_config.json` (everything else is stock and unused here).
    _saved_keys = (
        "num_frames", "invalid_floor", "temperature_range", "temperature_reference", "mean", "std", "do_sample_frames",
        "frame_rate", "person_crop_size", "person_threshold",
    )
    #: Settings a call may override (`preprocess(..., temperature_range=...)`); the other two are its own arguments.
    _call_settings = tuple(key for key in _saved_keys if key not in ("num_frames", "do_sample_frames"))

    def __init__(
        self,
        num_frames: int = 64,
        invalid_floor: float = transforms.DEFAULT_INVALID_FLOOR,
        temperature_range: Sequence[float] | None = None,
        temperature_reference: str = "absolute",
        mean: float | None = None,
        std: float | None = None,
        do_sample_frames: bool = False,
        frame_rate: float | None = None,
        person_crop_size: int | None = None,
        person_threshold: float = person_crop.DEFAULT_PERSON_THRESHOLD,
        **kwargs: Any,
    ) -> None:
        # Keys saved by the library (type, auto_map, ...) or by older versions are not constructor arguments.
        unused = {k: v for k, v in kwargs.items() if k not in ("video_processor_type", "processor_class", "auto_map")}
        if unused:
            logger.warning(f"ThermalVideoProcessor ignores unknown arguments {sorted(unused)}")
        super().__init__()
        self.num_frames = whole_number("num_frames", num_frames)
        self.invalid_floor = float(invalid_floor)
        self.temperature_reference = str(temperature_reference)
        if self.temperature_reference not in transforms.TEMPERATURE_REFERENCES:
            raise ValueError(
                f"temperature_reference must be one of {transforms.TEMPERATURE_REFERENCES}, got {temperature_reference!r}"
            )
        if temperature_range is None:
            temperature_range = transforms.default_temperature_range(self.temperature_reference)
        self.temperature_range = tuple(float(v) for v in temperature_range)
        self.mean = None if mean is None else float(mean)
        self.std = None if std is None else float(std)
        self.do_sample_frames = bool(do_sample_frames)
        self.frame_rate = None if frame_rate is None else float(frame_rate)
        if self.frame_rate is not None and not self.frame_rate > 0:
            raise ValueError(f"frame_rate must be > 0 frames per second (or None), got {frame_rate}")
        self.person_crop_size = None if person_crop_size is None else whole_number("person_crop_size", person_crop_size)
        if self.person_crop_size is not None and self.person_crop_size < 1:
            raise ValueError(f"person_crop_size must be a positive number of pixels (or None), got {person_crop_size}")
        self.person_threshold = float(person_threshold)
        self._check(self.num_frames, self.temperature_range, self.mean, self.std)

    @staticmethod
    def _check(num_frames, temperature_range, mean, std) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if len(temperature_range) != 2 or not temperature_range[1] > temperature_range[0]:
            raise ValueError(f"temperature_range must be (low, high) with high > low, got {temperature_range}")
        if (mean is None) != (std is None) or (std is not None and std <= 0):
            raise ValueError(f"mean and std must be given together, std > 0; got mean={mean}, std={std}")

    def to_dict(self) -> dict[str, Any]:
        """Only the thermal settings (plus the class name the Auto classes need)."""
        out = {key: getattr(self, key) for key in self._saved_keys}
        out["temperature_range"] = list(self.temperature_range)
        out["video_processor_type"] = type(self).__name__
        if getattr(self, "_auto_class", None) is not None:
            out["auto_map"] = {"AutoVideoProcessor": f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}"}
        return out

    # ---- numpy steps (also used by the training dataset) ---------------------------------------------------
    def clean(self, frames: np.ndarray, warn: bool = True) -> np.ndarray:
        """float32 copy of a `(T, H, W)` Celsius clip with invalid pixels repaired. A clip with no valid pixel is
        warned about once per process (training reads many); `preprocess` says it for every call instead."""
        frames = np.asarray(frames)
        if warn and self.has_no_valid_pixel(frames):
            logger.warning_once(self._no_valid_pixel_message("a clip"))
        return transforms.repair_invalid(frames, floor=self.invalid_floor)

    def has_no_valid_pixel(self, frames: np.ndarray) -> bool:
        # One pixel first: a clip whose first pixel is valid (nearly every clip) costs no mask here.
        return bool(frames.size and transforms.invalid_mask(frames.reshape(-1)[:1], self.invalid_floor)[0]
                    and transforms.invalid_mask(frames, self.invalid_floor).all())

    def _no_valid_pixel_message(self, which: str) -> str:
        # Nothing to repair from: the clip becomes a uniform room, and the model still answers something.
        return (f"{which} with no valid pixel (every pixel NaN, inf or below {self.invalid_floor} C) filled with "
                f"{transforms.DEFAULT_BACKGROUND_TEMPERATURE} C; the answer for it says nothing about the scene")

    def crop_to_person(self, frames: np.ndarray, box: Sequence[float] | None = None) -> np.ndarray:
        """The `(T, S, S)` square around the person (``person_crop_size`` S; see the class doc), the person in
        ``box`` (YOLO ``cx, cy, w, h`` in 0..1) when given; the clip unchanged when ``person_crop_size`` is None."""
        if self.person_crop_size is None:
            return frames
        frames = np.asarray(frames)
        height, width = frames.shape[1:]
        centre = person_crop.find_person(frames[len(frames) // 2], self.person_threshold, box)
        if centre is None:  # nobody that warm (or not in the box): the box's centre, else the frame's
            centre = person_crop.box_centre(box, height, width) if box is not None else (height / 2, width / 2)
        return person_crop.crop_square(frames, centre, self.person_crop_size)

    def crop_to_people(self, frames: np.ndarray) -> list[np.ndarray]:
        """One `(T, S, S)` square per warm blob of the middle frame (`person_crop.person_blobs`), largest first (the
        first is `crop_to_person`'s); the frame's centre when nothing is that warm. Some blobs are lamps or devices:
        this is every candidate person, for a caller that answers each (needs ``person_crop_size``)."""
        if self.person_crop_size is None:
            raise ValueError("crop_to_people needs person_crop_size (this processor keeps the whole frame)")
        frames = np.asarray(frames)
        height, width = frames.shape[1:]
        centres = person_crop.person_blobs(frames[len(frames) // 2], self.person_threshold) or [(height / 2, width / 2)]
        return [person_crop.crop_square(frames, centre, self.person_crop_size) for centre in centres]

    def people_clips(self, frames: np.ndarray) -> np.ndarray:
        """Every candidate person of one `(T, H, W)` Celsius clip (`crop_to_people`), each processed as `preprocess`
        processes a clip: `(P, num_frames, S, S)` float32 model inputs, largest person first."""
        crops = self.crop_to_people(self.clean(frames))
        clips = [self._finish(crop, self.num_frames, self.do_sample_frames) for crop in crops]
        return np.stack(clips).astype(np.float32, copy=False)

    def _finish(self, clip: np.ndarray, num_frames: int, do_sample_frames: bool) -> np.ndarray:
        """The steps after the crop, the same on every path: `fit_length`, then `normalize`."""
        return self.normalize(self.fit_length(clip, num_frames, do_sample_frames))

    def normalize(self, frames: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        """Celsius -> model units: clip to `temperature_range`, scale to 0..1, then `(x - mean) / std`."""
        if args or kwargs:
            raise TypeError("ThermalVideoProcessor.normalize(frames) takes its settings from the processor")
        return transforms.normalize(
            frames, self.temperature_range, self.mean, self.std, reference=self.temperature_reference
        )

    @staticmethod
    def length_indices(total: int, num_frames: int, do_sample_frames: bool = False) -> np.ndarray:
        """Indices (into a clip of `total` frames) of the `num_frames` frames `fit_length` keeps (see class doc)."""
        if total < 1:
            raise ValueError("a clip needs at least one frame")
        if total == num_frames:
            return np.arange(total, dtype=np.int64)
        if total > num_frames:
            if do_sample_frames:
                return np.arange(0, total, total / num_frames).astype(np.int64)[:num_frames]
            start = (total - num_frames) // 2
            return np.arange(start, start + num_frames, dtype=np.int64)
        before = (num_frames - total) // 2
        return np.clip(np.arange(num_frames, dtype=np.int64) - before, 0, total - 1)

    def fit_length(
        self, frames: np.ndarray, num_frames: int | None = None, do_sample_frames: bool | None = None
    ) -> np.ndarray:
        """Sample / crop / edge-pad a `(T, H, W)` clip to `num_frames` frames (see class doc)."""
        num_frames = self.num_frames if num_frames is None else int(num_frames)
        do_sample_frames = self.do_sample_frames if do_sample_frames is None else bool(do_sample_frames)
        frames = np.asarray(frames)
        if len(frames) == num_frames:
            return frames
        return frames[self.length_indices(len(frames), num_frames, do_sample_frames)]

    # ---- inputs --------------------------------------------------------------------------------------------
    def read_recording(
        self,
        path: str | os.PathLike,
        num_frames: int | None = None,
        start_frame: int | None = None,
        keyframe_index: int | None = None,
        do_sample_frames: bool | None = None,
    ) -> np.ndarray:
        """Raw Celsius `(num_frames, H, W)` window of an HDF5 recording, reading only the rows it needs."""
        num_frames = self.num_frames if num_frames is None else int(num_frames)
        do_sample_frames = self.do_sample_frames if do_sample_frames is None else bool(do_sample_frames)
        if start_frame is not None and keyframe_index is not None:
            raise ValueError("give start_frame or keyframe_index, not both")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recording not found: {path}")
        with open_recording(path) as handle:
            dataset = recording_frames(handle, path)
            total = dataset.shape[0]
            for name, value in (("start_frame", start_frame), ("keyframe_index", keyframe_index)):
                if value is not None and not 0 <= window_position(name, value) < total:
                    raise ValueError(f"{path}: {name} {int(value)} outside the recording (0..{total - 1})")
            if self.frame_rate is None:
                indices = self._frame_indices(total, num_frames, start_frame, keyframe_index, do_sample_frames)
            else:
                stamps = read_timestamps(handle, path, total, self.frame_rate)
                indices = self._time_indices(stamps, num_frames, start_frame, keyframe_index, do_sample_frames)
            indices = np.asarray(indices, dtype=np.int64)
            if start_frame is None and keyframe_index is None and do_sample_frames:
                self._warn_if_sparser_than_training(path, total, num_frames,
                                                    stamps if self.frame_rate is not None else None)
            low, high = int(indices.min()), int(indices.max())
            # One contiguous read of the covered rows (h5py slices chunk-wise), then index in memory.
            block = dataset[low : high + 1]
        return np.asarray(block[indices - low], dtype=np.float32)

    def _warn_if_sparser_than_training(self, path, total: int, num_frames: int, stamps) -> None:
        """A whole recording evenly subsampled (what the stock pipeline asks for) spans more time than a training
        window: the answer is for a clip unlike any the model learnt from."""
        if stamps is None:
            sparser = total > num_frames
        else:
            sparser = (float(stamps[-1]) - float(stamps[0])) / num_frames > 1.01 * 1000.0 / self.frame_rate
        if sparser:
            logger.warning_once(
                f"{path}: the whole recording was evenly subsampled to {num_frames} frames, a clip sparser in time than "
                "the model's training windows; for the window at a frame use the thermal pipeline "
                "(pipeline('thermal-video-classification')(path, keyframe_index=N)), for a timeline `thermal-hf predict`"
            )

    @staticmethod
    def _warn_if_refitted(lengths: list[int], num_frames: int, do_sample_frames: bool) -> None:
        """An array clip of another length is fitted (`fit_length`) as documented; said once per length, since the
        model then sees frames other than the consecutive ones it was trained on (recording windows always fit)."""
        shorter = [n for n in lengths if n < num_frames]
        longer = [n for n in lengths if n > num_frames]
        if shorter:
            logger.warning_once(f"a clip of {shorter[0]} frames is padded to num_frames={num_frames} by repeating its "
                                "first and last frames: give clips of num_frames frames")
        if longer:
            how = (f"evenly subsampled to {num_frames} (do_sample_frames: its frames are no longer consecutive)"
                   if do_sample_frames else f"cut to its centre {num_frames} frames")
            logger.warning_once(f"a clip of {longer[0]} frames is {how}: give clips of num_frames={num_frames} frames, "
                                "or a recording path with start_frame / keyframe_index")

    def _frame_indices(self, total, num_frames, start_frame, keyframe_index, do_sample_frames) -> np.ndarray:
        """Window of consecutive recorded frames (no `frame_rate`)."""
        from ...data.windows import window_indices

        if start_frame is not None:
            # Frames past the end repeat the last frame (as windows.window_indices pads).
            return np.clip(np.arange(int(start_frame), int(start_frame) + num_frames), 0, total - 1)
        if keyframe_index is not None:
            return window_indices(int(keyframe_index), num_frames, total)[0]
        return self.length_indices(total, num_frames, do_sample_frames)

    def _time_indices(self, stamps, num_frames, start_frame, keyframe_index, do_sample_frames) -> np.ndarray:
        """Window resampled at `frame_rate` on the recording's timestamps (the training windows' rule)."""
        from ...data.windows import nearest_frames, time_window_indices

        if start_frame is not None:
            return time_window_indices(stamps, int(start_frame), num_frames, self.frame_rate, anchor="start")[0]
        if keyframe_index is not None:
            return time_window_indices(stamps, int(keyframe_index), num_frames, self.frame_rate)[0]
        first, last = float(stamps[0]), float(stamps[-1])
        if do_sample_frames:  # num_frames instants evenly over the whole recording (arange(0, T, T / n) in time)
            instants = first + np.arange(num_frames) * ((last - first) / num_frames)
        else:  # num_frames / frame_rate seconds around the recording's middle instant
            instants = (first + last) / 2 + (np.arange(num_frames) - num_frames // 2) * (1000.0 / self.frame_rate)
        return nearest_frames(stamps, instants)

    def _as_clips(self, videos: Any, per_video, num_frames: int, do_sample_frames: bool):
        """Normalise the accepted inputs to a list of raw `(T, H, W)` numpy clips (lengths may differ)."""
        if isinstance(videos, (str, os.PathLike)):
            return [self.read_recording(videos, num_frames, do_sample_frames=do_sample_frames, **per_video(0))]
        if isinstance(videos, torch.Tensor):
            videos = _as_numpy(videos)
        if isinstance(videos, np.ndarray):
            check_clip_layout(videos, "the clip array")
            if videos.ndim == 3:
                return [videos]
            if videos.ndim == 4:
                return list(videos)
            raise ValueError(f"a clip array must be (T, H, W) or (B, T, H, W) Celsius, got shape {videos.shape}")
        if isinstance(videos, (list, tuple)):
            if not videos:
                raise ValueError("no video given")
            items = [_as_numpy(v) if isinstance(v, torch.Tensor) else _nested_list(v) for v in videos]
            if all(isinstance(v, np.ndarray) and v.ndim == 2 for v in items):
                return [np.stack(items)]  # a list of frames is one clip
            clips = []
            for i, item in enumerate(items):
                if isinstance(item, (str, os.PathLike)):
                    clips.append(self.read_recording(item, num_frames, do_sample_frames=do_sample_frames, **per_video(i)))
                    continue
                if any(value is not None for value in per_video(i).values()):
                    raise ValueError(f"video {i} of the list is an array: start_frame / keyframe_index apply to "
                                     f"recording paths only (give None at position {i})")
                item = np.asarray(item)
                check_clip_layout(item, f"video {i} of the list")
                if item.ndim != 3:
                    raise ValueError(f"video {i} of the list must be a (T, H, W) clip or a path, got shape {item.shape}")
                clips.append(item)
            return clips
        raise TypeError(f"unsupported video input of type {type(videos).__name__}")

    def preprocess(
        self,
        videos: Any,
        num_frames: int | None = None,
        start_frame: int | Sequence[int] | None = None,
        keyframe_index: int | Sequence[int] | None = None,
        do_sample_frames: bool | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Raw Celsius clips -> `BatchFeature({"pixel_values": (B, T, H, W) float32})`. See the class doc.
        Settings given here (`temperature_range=...`, see `ThermalVideosKwargs`) apply to this call only."""
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in self._call_settings}
        if overrides:
            settings = {key: getattr(self, key) for key in self._saved_keys}
            if "temperature_reference" in overrides and "temperature_range" not in overrides:
                settings["temperature_range"] = None  # the new reference's own default range
            # A new processor checks the values as the constructor does, and this one stays as it was.
            return type(self)(**{**settings, **overrides}).preprocess(
                videos, num_frames=num_frames, start_frame=start_frame, keyframe_index=keyframe_index,
                do_sample_frames=do_sample_frames, return_tensors=return_tensors, **kwargs,
            )
        if kwargs:
            # The stock pipeline and processors may pass settings that do not apply to thermal clips.
            logger.warning_once(f"ThermalVideoProcessor ignores arguments {sorted(kwargs)}")
        num_frames = self.num_frames if num_frames is None else whole_number("num_frames", num_frames)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        # The stock pipeline always passes do_sample_frames=True with its one input (the warning below).
        from_stock_pipeline = do_sample_frames is True
        do_sample_frames = self.do_sample_frames if do_sample_frames is None else bool(do_sample_frames)

        count = len(videos) if isinstance(videos, (list, tuple)) else 1
        for name, value in (("start_frame", start_frame), ("keyframe_index", keyframe_index)):
            if isinstance(value, (list, tuple, np.ndarray)) and len(value) != count:
                raise ValueError(f"{name} has {len(value)} value(s) for {count} video(s): give one per video "
                                 "(None for an array), or a single value for all")

        def per_video(i: int) -> dict[str, Any]:
            def pick(value):
                return value[i] if isinstance(value, (list, tuple, np.ndarray)) else value

            return {"start_frame": pick(start_frame), "keyframe_index": pick(keyframe_index)}

        is_path_input = isinstance(videos, (str, os.PathLike)) or (
            isinstance(videos, (list, tuple)) and any(isinstance(v, (str, os.PathLike)) for v in videos)
        )
        if (start_frame is not None or keyframe_index is not None) and not is_path_input:
            raise ValueError("start_frame / keyframe_index apply to HDF5 recording paths, not to arrays")

        clips = self._as_clips(videos, per_video, num_frames, do_sample_frames)
        if len(clips) > 1 and from_stock_pipeline and isinstance(videos, (np.ndarray, torch.Tensor)):
            # What the stock pipeline passes: it answers its input's first clip only (`logits[0]`).
            logger.warning(
                f"a {len(clips)}-clip (B, T, H, W) array: pipeline('video-classification') answers only its first "
                "clip; pass a list of (T, H, W) clips to get one answer per clip"
            )
        if num_frames != self.num_frames:
            logger.warning_once(
                f"num_frames={num_frames} differs from the {self.num_frames} frames this processor was saved with "
                "(the model's training windows): the model answers for a time span it was not trained on"
            )
        self._warn_if_refitted([len(clip) for clip in clips], num_frames, do_sample_frames)
        out, dead, hot = [], [], []
        for i, clip in enumerate(clips):
            if self.has_no_valid_pixel(np.asarray(clip)):
                dead.append(i)
            cleaned = self.clean(clip, warn=False)
            # the middle frame's median (a few microseconds): the floor of the room, whatever moves in it
            middle = float(np.median(cleaned[len(cleaned) // 2])) if cleaned.size else 0.0
            if middle > NOT_CELSIUS_MEDIAN:
                hot.append((i, middle))
            out.append(self._finish(self.crop_to_person(cleaned), num_frames, do_sample_frames))
        if dead:  # every call (an answer per clip), one line per call (a timeline may cross a long dropout)
            which = "a clip" if len(clips) == 1 else f"{len(dead)} of {len(clips)} clips (first: number {dead[0]})"
            logger.warning(self._no_valid_pixel_message(which))
        if hot:  # a room's floor is 15-35 C; 290-310 is Kelvin, and the model's answers for it mean nothing
            which = "the clip" if len(clips) == 1 else f"{len(hot)} of {len(clips)} clips (first: number {hot[0][0]})"
            logger.warning(f"{which} has a median of {hot[0][1]:.1f}: the model takes degrees Celsius (a room reads "
                           "about 15-35 C); for Kelvin values subtract 273.15 first")
        shapes = {c.shape for c in out}
        if len(shapes) > 1:
            raise ValueError(f"clips of one batch must share their frame size, got shapes {sorted(shapes)}")
        pixel_values = np.stack(out).astype(np.float32, copy=False)
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)

    def __call__(self, videos: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(videos, **kwargs)


__all__ = ["ThermalVideoProcessor"]
