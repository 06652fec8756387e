"""thermal-hf: action recognition in low-resolution thermal video on the Hugging Face stack.

Importing the package registers the thermal SlowFast classes with the `transformers` Auto classes, so a
saved model loads with `AutoModelForVideoClassification.from_pretrained(path)` and its processor with
`AutoVideoProcessor.from_pretrained(path)`, without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModelForVideoClassification, AutoVideoProcessor

from .models.thermal_slowfast import (
    ThermalSlowFastConfig,
    ThermalSlowFastForVideoClassification,
    ThermalSlowFastPreTrainedModel,
    ThermalVideoProcessor,
)

__version__ = "0.1.0"

# exist_ok: re-importing (e.g. a reloaded module in a notebook) must not fail.
AutoConfig.register(ThermalSlowFastConfig.model_type, ThermalSlowFastConfig, exist_ok=True)
AutoModelForVideoClassification.register(ThermalSlowFastConfig, ThermalSlowFastForVideoClassification, exist_ok=True)
AutoVideoProcessor.register(ThermalSlowFastConfig, ThermalVideoProcessor, exist_ok=True)

__all__ = [
    "ThermalSlowFastConfig",
    "ThermalSlowFastForVideoClassification",
    "ThermalSlowFastPreTrainedModel",
    "ThermalVideoProcessor",
    "__version__",
]

from . import pipelines  # noqa: E402,F401  registers the "thermal-video-classification" pipeline task
