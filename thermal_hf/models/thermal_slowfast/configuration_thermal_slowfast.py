"""Configuration of the thermal SlowFast video classifier."""

from __future__ import annotations

import numbers

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

#: Backbone depths `pytorchvideo.models.slowfast.create_slowfast` can build. Note that pytorchvideo's
#: "18" is its own light variant: bottleneck blocks with stage depths (1, 1, 1, 1) (not the 2-2-2-2
#: basic-block ResNet-18); it has no pretrained weights and exists for tests and CPU recipes.
SUPPORTED_DEPTHS = (18, 50, 101)

#: Numbers of test-time views (`ThermalSlowFastConfig.test_time_views`): subgroups of a square's 8 symmetries.
TEST_TIME_VIEWS = (1, 2, 4, 8)


_INT_FIELDS = ("model_depth", "num_frames", "slow_temporal_stride", "fast_temporal_stride", "slowfast_channel_ratio",
               "slowfast_fusion_channel_ratio", "slowfast_fusion_kernel_size", "stem_width", "num_channels",
               "stem_channels", "test_time_views")
_BOOL_FIELDS = ("slowfast_fusion_norm_act", "stem_pool")
_REAL_FIELDS = ("dropout", "head_init_std")


@strict
class ThermalSlowFastConfig(PreTrainedConfig):
    r"""
    Configuration of [`ThermalSlowFastForVideoClassification`]: pytorchvideo's SlowFast applied to
    single-channel, low-resolution thermal clips. The defaults reproduce SlowFast R50 8x8 (the Kinetics
    `SLOWFAST_8x8_R50` architecture) run on a 64-frame clip at 256 x 384.

    Args:
        model_depth (`int`, *optional*, defaults to 50):
            ResNet depth of both pathways: 18 (pytorchvideo's light variant, bottleneck stages 1-1-1-1, no
            pretrained weights), 50 (3-4-6-3) or 101 (3-4-23-3).
        num_frames (`int`, *optional*, defaults to 64):
            Number of frames of the clip the model is given (the processor samples or pads every clip to this).
            Must be divisible by `slow_temporal_stride` and by `fast_temporal_stride`.
        slow_temporal_stride (`int`, *optional*, defaults to 8):
            The Slow pathway sees every `slow_temporal_stride`-th frame (8 frames out of 64).
        fast_temporal_stride (`int`, *optional*, defaults to 2):
            The Fast pathway sees every `fast_temporal_stride`-th frame (32 frames out of 64). The SlowFast
            speed ratio alpha is `slow_temporal_stride // fast_temporal_stride` (4 by default); it is also the
            temporal stride of the Fast-to-Slow fusion convolutions, see [`~ThermalSlowFastConfig.slowfast_alpha`].
        slowfast_channel_ratio (`int`, *optional*, defaults to 8):
            beta: the Fast pathway has `1 / slowfast_channel_ratio` of the Slow pathway's channels.
        slowfast_fusion_channel_ratio (`int`, *optional*, defaults to 2):
            Output channels of each Fast-to-Slow lateral convolution, as a multiple of the Fast pathway's
            channels at that stage (pytorchvideo's `slowfast_conv_channel_fusion_ratio`).
        slowfast_fusion_kernel_size (`int`, *optional*, defaults to 7):
            Temporal kernel size of the Fast-to-Slow lateral convolutions (kernel `(k, 1, 1)`).
        slowfast_fusion_norm_act (`bool`, *optional*, defaults to `True`):
            Whether each Fast-to-Slow lateral connection is convolution + BatchNorm + ReLU (pytorchvideo and its
            zoo checkpoints) or the bare convolution (`False`: MMAction2's `ResNet3dSlowFast`, whose laterals
            have no norm or activation; set by `thermal-hf import-checkpoint --format mmaction2`).
        image_size (`tuple[int, int]`, *optional*, defaults to `(256, 384)`):
            `(height, width)` the backbone runs at. Clips may arrive smaller (the sensor gives 40 x 60): the
            model resizes them on the device, bilinearly per frame.
        stem_width (`int`, *optional*, defaults to 64):
            Output channels of the Slow pathway's stem (the Fast one has `stem_width / slowfast_channel_ratio`);
            every residual stage's width scales with it (stage outputs are 4, 8, 16 and 32 times it). 64 is
            SlowFast's (and the zoo checkpoints'); 16 or 32 give small, fast models for native 40 x 60 clips.
        stem_pool (`bool`, *optional*, defaults to `True`):
            Whether the stem ends with SlowFast's (1, 3, 3) stride-2 max pool. Without it the stages run at twice
            the resolution: with the stem's stride-2 convolution, a 40 x 60 clip enters the stages at 20 x 30
            instead of 10 x 15, where a person is still a few cells wide. Parameter-free: weights are unchanged.
        num_channels (`int`, *optional*, defaults to 1):
            Channels of the clip given to `forward` (1 for thermal). A `(B, T, H, W)` clip has 1 channel.
        stem_channels (`int`, *optional*, defaults to 3):
            Input channels of the stem convolutions. 3 so that RGB Kinetics weights load unchanged; the
            clip's `num_channels` are repeated to this number on the device (must be a multiple of it).
        dropout (`float`, *optional*, defaults to 0.8):
            Dropout before the classification projection (high on purpose: the dataset is small).
        head_init_std (`float`, *optional*, defaults to 0.01):
            Standard deviation of the classification projection's initial weights (pytorchvideo's
            `fc_init_std`); all other layers follow pytorchvideo's ResNet initialisation.
        test_time_views (`int`, *optional*, defaults to 1):
            Views of each clip averaged when the model is not training (evaluation, `predict`, the pipeline):
            1 (the clip as given), 2 (and its left-right mirror), 4 (and its up-down mirror and its turn by 180
            degrees) or 8 (its 4 turns by 90 degrees and their mirrors; a square `image_size` only). A
            ceiling sensor has no up or down, so every view is a clip it could have seen. With more than one view
            `logits` are the log of the views' mean probabilities. Training is unaffected.
        num_labels / id2label / label2id:
            The standard classification fields. Ids are ints (JSON turns them into strings; they are
            converted back when loaded).

    Example:

    ```python
    >>> from thermal_hf import ThermalSlowFastConfig, ThermalSlowFastForVideoClassification
    >>> config = ThermalSlowFastConfig(model_depth=18, num_frames=16, image_size=(32, 48), num_labels=14)
    >>> model = ThermalSlowFastForVideoClassification(config)
    ```
    """

    model_type = "thermal_slowfast"

    model_depth: int = 50
    num_frames: int = 64
    slow_temporal_stride: int = 8
    fast_temporal_stride: int = 2
    slowfast_channel_ratio: int = 8
    slowfast_fusion_channel_ratio: int = 2
    slowfast_fusion_kernel_size: int = 7
    slowfast_fusion_norm_act: bool = True
    image_size: list[int] | tuple[int, int] = (256, 384)
    stem_width: int = 64
    stem_pool: bool = True
    num_channels: int = 1
    stem_channels: int = 3
    dropout: float | int = 0.8
    head_init_std: float = 0.01
    test_time_views: int = 1

    def __post_init__(self, **kwargs):
        self._check_types()
        # JSON stores tuples as lists: keep one canonical, hashable form.
        self.image_size = tuple(int(v) for v in self.image_size)
        super().__post_init__(**kwargs)
        if self.label2id is not None:
            self.label2id = {str(k): int(v) for k, v in self.label2id.items()}
        # Checked here too (not only by the `@strict` validator) so that callers get a plain ValueError.
        self._check_values()

    @property
    def slowfast_alpha(self) -> int:
        """Frame-rate ratio between the Fast and the Slow pathway (alpha, 4 by default)."""
        return self.slow_temporal_stride // self.fast_temporal_stride

    def check_num_frames(self, frames: int, what: str = "num_frames", hint: str = "") -> None:
        """Raise `ValueError` unless both pathways can take clips of ``frames`` frames (the config's own
        num_frames, the frames a forward gets, the num_frames a pipeline call asks for)."""
        if frames % self.slow_temporal_stride or frames % self.fast_temporal_stride:
            raise ValueError(f"{what}={frames}: must be divisible by slow_temporal_stride ({self.slow_temporal_stride}) "
                             f"and fast_temporal_stride ({self.fast_temporal_stride}){hint}")

    def validate_architecture(self):
        """Part of `@strict`-powered validation: reject settings the backbone cannot run."""
        super().validate_architecture()
        self._check_values()

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """As `PretrainedConfig.from_dict`, which sets `from_pretrained`'s keyword overrides after the checks of
        `__post_init__`: the overridden config is checked again."""
        out = super().from_dict(config_dict, **kwargs)
        config = out[0] if isinstance(out, tuple) else out
        config.image_size = tuple(int(v) for v in config.image_size)
        config._check_values()
        return out

    def _check_types(self):
        # A hand-edited config.json ("stem_pool": "no", "num_frames": "16") must fail naming the field, not build
        # another network (any non-empty string is true) or fail deep inside a comparison.
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"ThermalSlowFastConfig.{name} must be an integer, got {value!r}")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ThermalSlowFastConfig.{name} must be true or false, got {getattr(self, name)!r}")
        for name in _REAL_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"ThermalSlowFastConfig.{name} must be a number, got {value!r}")
        size = self.image_size
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in size)):
            raise ValueError(f"ThermalSlowFastConfig.image_size must be two integers (height, width), got {size!r}")

    def _check_values(self):
        self._check_types()
        if self.problem_type not in (None, "single_label_classification"):
            raise ValueError(
                f"problem_type must be 'single_label_classification' (or None): this model answers one class a clip "
                f"and trains with cross-entropy; got {self.problem_type!r}"
            )
        if self.num_labels < 1:
            raise ValueError(f"num_labels must be at least 1 (the classes of the head), got {self.num_labels}")
        if self.model_depth not in SUPPORTED_DEPTHS:
            raise ValueError(f"model_depth must be one of {SUPPORTED_DEPTHS}, got {self.model_depth}")
        for name in ("num_frames", "slow_temporal_stride", "fast_temporal_stride", "slowfast_channel_ratio",
                     "slowfast_fusion_channel_ratio", "slowfast_fusion_kernel_size", "stem_width", "num_channels",
                     "stem_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.slow_temporal_stride % self.fast_temporal_stride:
            raise ValueError(
                f"slow_temporal_stride ({self.slow_temporal_stride}) must be a multiple of fast_temporal_stride "
                f"({self.fast_temporal_stride}): their ratio is the SlowFast alpha"
            )
        self.check_num_frames(self.num_frames)
        if self.stem_width % self.slowfast_channel_ratio:
            raise ValueError(
                f"slowfast_channel_ratio ({self.slowfast_channel_ratio}) must divide stem_width ({self.stem_width})"
            )
        if len(self.image_size) != 2 or min(self.image_size) < 32:
            raise ValueError(f"image_size must be (height, width), each >= 32, got {self.image_size}")
        if self.stem_channels % self.num_channels:
            raise ValueError(
                f"stem_channels ({self.stem_channels}) must be a multiple of num_channels ({self.num_channels}): "
                "clip channels are repeated to feed the stem"
            )
        if self.test_time_views not in TEST_TIME_VIEWS:
            raise ValueError(f"test_time_views must be one of {TEST_TIME_VIEWS}, got {self.test_time_views}")
        if self.test_time_views == 8 and self.image_size[0] != self.image_size[1]:
            raise ValueError(
                f"test_time_views=8 turns clips by 90 degrees, which needs a square image_size; got {self.image_size} "
                "(use 4 views: the mirrors and the turn by 180 degrees keep any shape)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


__all__ = ["ThermalSlowFastConfig", "SUPPORTED_DEPTHS", "TEST_TIME_VIEWS"]
