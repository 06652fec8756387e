"""Shared fixtures: a small synthetic raw dataset, its converted form, a tiny saved model, and the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the network: the Hub is unreachable here and must not be tried.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("THERMAL_REAL_DATA", REPO_ROOT.parent / "shared" / "datasets" / "thermal_action_v1"))

TINY_NUM_FRAMES = 16
TINY_IMAGE_SIZE = (32, 48)


def free_port() -> int:
    """A TCP port nobody listens on, for an `accelerate launch` of the tests: two launches on accelerate's default
    port (29500) at once, a test beside a user's own run or another test session, join each other's process
    group and abort."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    if not (REAL_DATA / "annotations" / "train.json").is_file():
        pytest.skip(f"real data not found at {REAL_DATA} (set THERMAL_REAL_DATA or place ../shared beside the repo)")
    return REAL_DATA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    from thermal_hf.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic") / "raw"
    generate_dataset(root, recordings=4, seed=0, frames_per_recording=160)
    return root


@pytest.fixture(scope="session")
def converted_dataset(synthetic_root, tmp_path_factory) -> Path:
    from thermal_hf.data.convert import convert_dataset

    out = tmp_path_factory.mktemp("converted") / "ds"
    convert_dataset(synthetic_root, out, num_frames=TINY_NUM_FRAMES)
    return out


def make_tiny_model(num_labels: int = 14, **overrides):
    """A depth-18 SlowFast small enough to run a step on CPU in well under a second."""
    from thermal_hf.data.categories import DEFAULT_CATEGORY_NAMES as CATEGORY_NAMES
    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastConfig,
        ThermalSlowFastForVideoClassification,
    )

    names = list(CATEGORY_NAMES)[:num_labels] if num_labels <= len(CATEGORY_NAMES) else [f"c{i}" for i in range(num_labels)]
    kwargs = dict(
        model_depth=18,
        num_frames=TINY_NUM_FRAMES,
        image_size=TINY_IMAGE_SIZE,
        dropout=0.0,
        num_labels=num_labels,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    kwargs.update(overrides)
    config = ThermalSlowFastConfig(**kwargs)
    return ThermalSlowFastForVideoClassification(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch

    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor

    torch.manual_seed(0)
    model = make_tiny_model()
    out = tmp_path_factory.mktemp("tiny_model") / "model"
    model.save_pretrained(out)
    ThermalVideoProcessor(num_frames=TINY_NUM_FRAMES).save_pretrained(out)
    return out
