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
and forces ``do_sample_frames=True`` (a longer clip is evenly subsampled). It needs PyAV (``av``) installed.

For windows of HDF5 recordings use :class:`ThermalVideoClassificationPipeline`, registered under its own task name
(the built-in ``video-classification`` task is left untouched)::

    thermal = pipeline("thermal-video-classification", model="path/or/org-name")
    # or: pipeline("video-classification", model=..., pipeline_class=ThermalVideoClassificationPipeline)
    thermal("SL14_R1.h5", keyframe_index=240)   # the window centred on frame 240 (as in training)
    thermal("SL14_R1.h5", start_frame=100)      # frames 100 .. 100 + num_frames - 1
    thermal(clip, top_k=3)                      # arrays / tensors / lists behave as in the stock pipeline

It differs from the stock pipeline only where that helps thermal data: it accepts ``start_frame`` /
``keyframe_index`` (edge windows are padded by repeating frames, as in training), it does not force even
subsampling (a longer clip is cut by the processor's own rule, ``do_sample_frames`` in its config; default: the
centre ``num_frames``, same frame rate as training), and it rejects a ``(B, T, H, W)`` array (the stock pipeline
would silently answer for its first clip only: pass a list instead). A model whose processor has a
``frame_rate`` (trained on windows resampled in time) reads these windows at that rate on the file's timestamps:
``start_frame`` starts the window at that frame's time, ``keyframe_index`` centres it there. An array input has
no timestamps and is taken as already at that rate.

To slide a model over whole recordings, in batches and with a timeline, use ``thermal-hf predict``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import AutoModelForVideoClassification
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.video_classification import VideoClassificationPipeline

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
    ):
        preprocess, forward, postprocess = super()._sanitize_parameters(
            top_k=top_k, num_frames=num_frames, frame_sampling_rate=frame_sampling_rate,
            function_to_apply=function_to_apply,
        )
        if start_frame is not None and keyframe_index is not None:
            raise ValueError("give start_frame or keyframe_index, not both")
        if start_frame is not None:
            preprocess["start_frame"] = int(start_frame)
        if keyframe_index is not None:
            preprocess["keyframe_index"] = int(keyframe_index)
        return preprocess, forward, postprocess

    def preprocess(self, video, num_frames=None, frame_sampling_rate=1, start_frame=None, keyframe_index=None):
        if self.video_processor is None:
            raise ValueError("this model has no video processor (video_preprocessor_config.json); save one beside it")
        if frame_sampling_rate != 1:
            raise ValueError("frame_sampling_rate is not supported for thermal clips; pass the frames you want")
        if hasattr(video, "ndim") and video.ndim == 4:
            raise ValueError(
                f"got a batch array of shape {tuple(video.shape)}: pass a list of (T, H, W) clips to classify several"
            )
        kwargs: dict[str, Any] = {"num_frames": num_frames or self.model.config.num_frames}
        if start_frame is not None:
            kwargs["start_frame"] = start_frame
        if keyframe_index is not None:
            kwargs["keyframe_index"] = keyframe_index
        return self.video_processor(video, return_tensors="pt", **kwargs).to(self.dtype)


def postprocess_probabilities(logits: np.ndarray, problem_type: str | None = None) -> np.ndarray:
    """The pipeline's score rule applied to a batch of logits (used by evaluate / predict for equal scores)."""
    logits = np.asarray(logits, dtype=np.float64)
    if problem_type == "multi_label_classification":
        return 1.0 / (1.0 + np.exp(-logits))
    if problem_type == "regression":
        return logits
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
