"""SlowFast for thermal video as a `transformers` model: config, model, video processor."""

from .configuration_thermal_slowfast import SUPPORTED_DEPTHS, ThermalSlowFastConfig
from .modeling_thermal_slowfast import (
    ThermalSlowFastForVideoClassification,
    ThermalSlowFastPreTrainedModel,
    build_slowfast,
)
from .video_processing_thermal_slowfast import ThermalVideoProcessor

__all__ = [
    "SUPPORTED_DEPTHS",
    "ThermalSlowFastConfig",
    "ThermalSlowFastForVideoClassification",
    "ThermalSlowFastPreTrainedModel",
    "ThermalVideoProcessor",
    "build_slowfast",
]
