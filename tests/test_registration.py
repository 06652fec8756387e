"""Auto-class registration: a saved model + processor load in a fresh process that imports thermal_hf."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import thermal_hf
from thermal_hf import ThermalSlowFastConfig, ThermalSlowFastForVideoClassification, ThermalVideoProcessor

FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from transformers import AutoConfig, AutoModelForVideoClassification, AutoVideoProcessor

    path = sys.argv[1]
    result = {}
    # Without importing thermal_hf the model type is unknown to transformers (documented requirement).
    try:
        AutoConfig.from_pretrained(path)
        result["without_import"] = "loaded"
    except (ValueError, KeyError) as err:
        result["without_import"] = type(err).__name__

    import thermal_hf  # registers the Auto classes

    config = AutoConfig.from_pretrained(path)
    model = AutoModelForVideoClassification.from_pretrained(path).eval()  # no trust_remote_code
    processor = AutoVideoProcessor.from_pretrained(path)
    clip = np.load(path + "/clip.npy")
    with torch.no_grad():
        logits = model(**processor(clip, return_tensors="pt")).logits
    result.update(
        config=type(config).__name__, model=type(model).__name__, processor=type(processor).__name__,
        id2label={str(k): v for k, v in config.id2label.items()}, id_types=sorted({type(k).__name__ for k in config.id2label}),
        logits=logits[0].tolist(),
    )
    print("RESULT " + json.dumps(result))
    """
)


def test_public_api():
    assert thermal_hf.__version__
    for name in ("ThermalSlowFastConfig", "ThermalSlowFastForVideoClassification", "ThermalVideoProcessor"):
        assert name in thermal_hf.__all__
        assert hasattr(thermal_hf, name)


def test_auto_classes_know_the_thermal_types():
    from transformers import AutoConfig, AutoModelForVideoClassification

    config = AutoConfig.for_model("thermal_slowfast", model_depth=18, num_frames=16, image_size=(32, 48), num_labels=3)
    assert isinstance(config, ThermalSlowFastConfig)
    model = AutoModelForVideoClassification.from_config(config)
    assert isinstance(model, ThermalSlowFastForVideoClassification)


@pytest.mark.slow  # a fresh interpreter importing torch + transformers: ~10-20 s on 2 busy cores
def test_fresh_process_loads_model_and_processor_without_remote_code(tmp_path):
    torch.manual_seed(0)
    names = ["standing", "sitting", "lying"]
    config = ThermalSlowFastConfig(
        model_depth=18, num_frames=16, image_size=(32, 48), dropout=0.0,
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
    )
    model = ThermalSlowFastForVideoClassification(config).eval()
    processor = ThermalVideoProcessor(num_frames=16)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    clip = np.random.default_rng(0).uniform(10, 40, (16, 40, 60)).astype(np.float32)
    clip[3, :5, :5] = -273.2
    np.save(tmp_path / "clip.npy", clip)
    with torch.no_grad():
        expected = model(**processor(clip, return_tensors="pt")).logits[0].tolist()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["without_import"] != "loaded"
    assert result["config"] == "ThermalSlowFastConfig"
    assert result["model"] == "ThermalSlowFastForVideoClassification"
    assert result["processor"] == "ThermalVideoProcessor"
    assert result["id2label"] == {"0": "standing", "1": "sitting", "2": "lying"}
    assert result["id_types"] == ["int"]
    torch.testing.assert_close(torch.tensor(result["logits"]), torch.tensor(expected), rtol=0, atol=1e-6)
