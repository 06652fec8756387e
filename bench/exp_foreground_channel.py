"""Experiment behind one ablation row of BENCHMARKS.md: a second input channel holding the foreground.

    .venv/bin/python bench/exp_foreground_channel.py recipes/thermal_native.yaml \
        --dataset ../shared/datasets/thermal_action_v1 --protocol grouped --seeds 3 --output OUT

Runs `thermal-hf benchmark` (same arguments) with two changes patched in, not shipped as recipe keys because they
did not help (grouped split, 3 seeds, on the 64-frame recipe of the third session: 26.4 ± 1.1 % mean class
accuracy against 27.6 ± 0.0 % without the channel):

- the processor's `normalize` returns `(T, 2, H, W)`: channel 0 is the usual normalised clip; channel 1 is each
  pixel minus its median over the clip (every 2nd frame), clipped to -4..8 C and scaled to 0..1, i.e. what
  moved against the room;
- every model is built with `num_channels=2, stem_channels=2`.

Without `--output` the results go to `outputs/benchmark/<recipe>-foreground/<protocol>`, not to the plain
recipe's folder, whose runs the benchmark would otherwise reuse (the patch is not part of the recipe).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from thermal_hf.benchmark import main
from thermal_hf.models.thermal_slowfast import ThermalSlowFastConfig, ThermalVideoProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exp_common import with_experiment_output, with_whole_room  # noqa: E402

_normalize = ThermalVideoProcessor.normalize
_config_init = ThermalSlowFastConfig.__init__


def normalize_with_foreground(self, frames, *args, **kwargs):
    base = _normalize(self, frames, *args, **kwargs)
    clip = np.asarray(frames, dtype=np.float32)
    foreground = (np.clip(clip - np.median(clip[::2], axis=0), -4.0, 8.0) + 4.0) / 12.0
    return np.stack([base, foreground.astype(np.float32)], axis=1)


def two_channel_config(self, *args, **kwargs):
    kwargs.update(num_channels=2, stem_channels=2)
    _config_init(self, *args, **kwargs)


if __name__ == "__main__":
    ThermalVideoProcessor.normalize = normalize_with_foreground
    ThermalSlowFastConfig.__init__ = two_channel_config
    sys.exit(main(with_experiment_output(with_whole_room(sys.argv[1:]), "foreground")))
