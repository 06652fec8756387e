"""`transformers` pipelines for thermal action recognition.

After ``import thermal_hf`` (which registers the model, its video processor and the task below), a model folder
written by ``save_pretrained``, a ``Trainer`` checkpoint folder, or a Hub repo works with the stock pipeline::

    import numpy as np
    import thermal_hf  # noqa: F401
    from transformers import pipeline

    classifier = pipeline("video-classification", model="path/or/org-name")   # always name the task
    classifier(clip)                  # clip: numpy (T, H, W) in degrees Celsius, or a torch tensor
    classifier([clip_a, clip_b])      # a list of clips -> one result list per clip
    classifier("SL14_R1.h5")          # a whole recording, evenly subsampled to num_frames
    # -> [{"label": "standing", "score": 0.83}, ...]   top_k=5 by default (softmax)

The stock ``video-classification`` pipeline hands its input straight to ``ThermalVideoProcessor`` (invalid-pixel
repair, temporal length, normalisation: the training preprocessing), takes ``num_frames`` from the model config,
and forces ``do_sample_frames=True`` (a longer clip is evenly subsampled). It needs PyAV (``av``) installed. It
drops ``frame_sampling_rate`` when the model has a video processor (transformers' own rule, for every model): the
thermal pipeline below refuses it instead. Both warn when ``num_frames`` differs from the model's training windows
and when a clip's median is not a Celsius room temperature (Kelvin values).

For windows of HDF5 recordings use :class:`ThermalVideoClassificationPipeline`, registered under its own task name
(the built-in ``video-classification`` task is left untouched)::

    thermal = pipeline("thermal-video-classification", model="path/or/org-name")
    # or: pipeline("video-classification", model=..., pipeline_class=ThermalVideoClassificationPipeline)
    thermal("SL14_R1.h5", keyframe_index=240)   # the window centred on frame 240 (as in training)
    thermal("SL14_R1.h5", start_frame=100)      # frames 100 .. 100 + num_frames - 1
    thermal(clip, top_k=3)                      # arrays / tensors / lists behave as in the stock pipeline
    thermal(["a.h5", "b.h5"], keyframe_index=[240, 17])   # one position per recording
    thermal(clips, batch_size=8)                # batches of clips through the model (the stock one cannot)
    thermal.save_pretrained("folder")           # model + video processor (the stock one drops the processor)

It differs from the stock pipeline only where that helps thermal data: it accepts ``start_frame`` /
``keyframe_index`` (edge windows are padded by repeating frames, as in training), it does not force even
subsampling (a longer clip is cut by the processor's own rule, ``do_sample_frames`` in its config; default: the
centre ``num_frames``, same frame rate as training; a shorter clip is edge-padded; both with a warning), it batches (``batch_size``), its ``save_pretrained`` keeps
the video processor, and it rejects a ``(B, T, H, W)`` array (the stock pipeline answers for its first clip only,
with a warning: pass a list instead). Both refuse a clip with a colour axis (``(T, H, W, 3)``): a thermal clip
is one Celsius value per pixel. A model whose processor has a
``frame_rate`` (trained on windows resampled in time) reads these windows at that rate on the file's timestamps:
``start_frame`` starts the window at that frame's time, ``keyframe_index`` centres it there. An array input has
no timestamps and is taken as already at that rate.

To slide a model over whole recordings, in batches and with a timeline, use ``thermal-hf predict``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForVideoClassification
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.video_classification import VideoClassificationPipeline

from .models.thermal_slowfast.video_processing_thermal_slowfast import check_clip_layout, window_position

THERMAL_TASK = "thermal-video-classification"


class ThermalVideoClassificationPipeline(VideoClassificationPipeline):
    """Video classification of thermal clips and HDF5 recording windows (see the module docstring)."""

    def _sanitize_parameters(
        self,
        top_k=None,
        num_frames=None,
        frame_sampling_rate=None,
        function_to_apply=None,
        start_frame=None,
        keyframe_index=None,
        **processor_settings,
    ):
        preprocess, forward, postprocess = super()._sanitize_parameters(
            top_k=top_k, num_frames=num_frames, frame_sampling_rate=frame_sampling_rate,
            function_to_apply=function_to_apply,
        )
        from .models.thermal_slowfast import ThermalVideoProcessor

        unknown = sorted(set(processor_settings) - set(ThermalVideoProcessor._call_settings))
        if unknown:
            raise TypeError(f"unknown pipeline argument(s) {unknown}: besides top_k, num_frames, function_to_apply, "
                            "start_frame / keyframe_index and batch_size, the video processor's settings are "
                            f"accepted for one call: {', '.join(ThermalVideoProcessor._call_settings)}")
        if processor_settings:
            preprocess["processor_settings"] = processor_settings
        if start_frame is not None and keyframe_index is not None:
            raise ValueError("give start_frame or keyframe_index, not both")
        for name, value in (("start_frame", start_frame), ("keyframe_index", keyframe_index)):
            if value is not None:  # a list (one position per input) was split by __call__
                preprocess[name] = window_position(name, value)
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        """As the stock pipeline; `start_frame` / `keyframe_index` may also be a list, one position per input."""
        for name in ("start_frame", "keyframe_index"):
            positions = kwargs.get(name)
            if isinstance(positions, (list, tuple, np.ndarray)):
                if not isinstance(inputs, (list, tuple)):
                    raise ValueError(f"a list of {name} positions goes with a list of inputs (one each); for one "
                                     f"input give one {name}")
                if len(inputs) != len(positions):
                    raise ValueError(f"{name} lists one position per input: got {len(positions)} for {len(inputs)} "
                                     "inputs")
                # The stock machinery runs each input alone: pair every input with its own position.
                del kwargs[name]
                return [self(item, **{name: position}, **kwargs) for item, position in zip(inputs, positions)]
        return super().__call__(inputs, **kwargs)

    def preprocess(self, video, num_frames=None, frame_sampling_rate=1, start_frame=None, keyframe_index=None,
                   processor_settings=None):
        if self.video_processor is None:
            raise ValueError("this model has no video processor (video_preprocessor_config.json); save one beside it")
        if frame_sampling_rate != 1:
            raise ValueError("frame_sampling_rate is not supported for thermal clips; pass the frames you want")
        if hasattr(video, "ndim") and video.ndim == 4:
            check_clip_layout(video, "the clip array")  # a (T, H, W, C) clip is said to be one, not a batch
            raise ValueError(
                f"got a batch array of shape {tuple(video.shape)}: pass a list of (T, H, W) clips to classify several"
            )
        num_frames = num_frames or self.model.config.num_frames
        config = self.model.config
        # said before any recording is read, not by the model's forward
        config.check_num_frames(num_frames, hint=f"; this model was trained on {config.num_frames}")
        kwargs: dict[str, Any] = {"num_frames": num_frames, **(processor_settings or {})}
        if start_frame is not None:
            kwargs["start_frame"] = start_frame
        if keyframe_index is not None:
            kwargs["keyframe_index"] = keyframe_index
        return self.video_processor(video, return_tensors="pt", **kwargs).to(self.dtype)

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        if batch_size == 1:
            return super().get_iterator(inputs, num_workers, batch_size, preprocess_params, forward_params,
                                        postprocess_params)
        # transformers batches only through a tokenizer, feature extractor or image processor; here the clips'
        # `pixel_values` are concatenated, which needs one frame size per batch (the model resizes, not the
        # processor).
        from torch.utils.data import DataLoader
        from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

        if hasattr(inputs, "__len__"):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:  # a generator is read as it goes, as the stock pipeline reads it (one worker)
            dataset, num_workers = PipelineIterator(inputs, self.preprocess, preprocess_params), min(num_workers, 1)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=_concatenate_clips)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def save_pretrained(self, save_directory, **kwargs):
        """The model and its video processor, so that `pipeline(..., model=save_directory)` works again. Not the
        stock method: it leaves the video processor out, and for a registered pipeline class it copies this
        module into the folder as remote code, which a package-registered model never needs."""
        if os.path.isfile(save_directory):
            raise ValueError(f"{save_directory} is a file; save_pretrained writes a folder")
        self.model.save_pretrained(save_directory, **kwargs)
        if self.video_processor is not None:
            self.video_processor.save_pretrained(save_directory, **kwargs)


def _concatenate_clips(items: list) -> dict:
    shapes = sorted({tuple(item["pixel_values"].shape[1:]) for item in items})
    if len(shapes) > 1:
        raise ValueError(f"batch_size > 1 needs clips of one frame size (the model resizes each clip); got {shapes}: "
                         "give batch_size=1 for these")
    return {"pixel_values": torch.cat([item["pixel_values"] for item in items])}


def postprocess_probabilities(logits: np.ndarray) -> np.ndarray:
    """The pipeline's score rule (softmax: the model is a single-label classifier) applied to a batch of logits
    (used by evaluate / predict for equal scores)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def register_pipelines() -> None:
    """Register ``thermal-video-classification`` once (re-imports must not warn or replace anything)."""
    if THERMAL_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            THERMAL_TASK,
            pipeline_class=ThermalVideoClassificationPipeline,
            pt_model=AutoModelForVideoClassification,
            type="video",
        )


register_pipelines()

__all__ = ["THERMAL_TASK", "ThermalVideoClassificationPipeline", "postprocess_probabilities", "register_pipelines"]
