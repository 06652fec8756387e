"""weight_averaging: the trained model is the mean of the epochs' weights, its batch norms recomputed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_trainer import ToyClassifier, ToyClips, make_args
from torch import nn
from transformers import TrainerCallback

from thermal_hf.errors import RecipeError
from thermal_hf.training.callbacks import recompute_batch_norm
from thermal_hf.training.data import collate_clips
from thermal_hf.training.trainer import ThermalTrainer


class ToyWithBatchNorm(ToyClassifier):
    """The trainer tests' toy model with a batch norm in place of its layer norm (statistics to recompute)."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(8)


class EpochWeights(TrainerCallback):
    """The parameters at the end of every epoch (before weight averaging replaces them)."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.weights.append({n: p.detach().clone() for n, p in model.named_parameters()})


def train_toy(tmp_path, epochs: int, **overrides):
    torch.manual_seed(0)
    model, dataset, recorder = ToyWithBatchNorm(), ToyClips(), EpochWeights()
    args = make_args(tmp_path, num_train_epochs=epochs, per_device_train_batch_size=4, learning_rate=0.5, **overrides)
    trainer = ThermalTrainer(model=model, args=args, train_dataset=dataset, data_collator=collate_clips,
                             callbacks=[recorder])
    trainer.train()
    return model, dataset, recorder.weights


@pytest.mark.parametrize(("start", "averaged"), [(0.5, [2, 3]), (0.0, [0, 1, 2, 3]), (0.9, [3])])
def test_model_is_the_mean_of_the_epochs_after_start(tmp_path, start, averaged):
    model, dataset, epochs = train_toy(tmp_path, 4, callbacks=["weight_averaging"], weight_averaging_start=start)
    assert len(epochs) == 4 and not torch.equal(epochs[2]["head.weight"], epochs[3]["head.weight"])
    for name, parameter in model.named_parameters():
        mean = torch.stack([epochs[i][name] for i in averaged]).mean(0)
        torch.testing.assert_close(parameter.detach(), mean, rtol=1e-5, atol=1e-6)
    # The running statistics are those of the averaged weights over one pass of the training clips (two batches
    # of 4: the mean of the batch means is the mean over all 8), not the last epoch's moving averages.
    with torch.no_grad():
        features = torch.tanh(model.backbone(dataset.clips.flatten(1)))
    torch.testing.assert_close(model.norm.running_mean, features.mean(0), rtol=1e-4, atol=1e-5)
    assert int(model.norm.num_batches_tracked) == 2


def test_without_the_callback_the_model_is_the_last_epochs(tmp_path):
    model, _, epochs = train_toy(tmp_path, 3)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter.detach(), epochs[-1][name])


def test_recompute_batch_norm_restores_momentum_and_mode():
    model = ToyWithBatchNorm().eval()
    clips = torch.randn(6, 2, 3, 4)
    loader = [{"pixel_values": clips[:3]}, {"pixel_values": clips[3:]}]
    recompute_batch_norm(model, loader)
    assert model.norm.momentum == 0.1 and not model.training
    with torch.no_grad():
        features = torch.tanh(model.backbone(clips.flatten(1)))
    torch.testing.assert_close(model.norm.running_mean, features.mean(0), rtol=1e-4, atol=1e-5)


def _recompute_on_this_process_shard():
    rank = torch.distributed.get_rank()  # debug_launcher's gloo group (accelerate's PartialState does not see it)
    torch.manual_seed(0)  # the same weights on every process, as DDP keeps them
    model, clips = ToyWithBatchNorm(), torch.randn(8, 2, 3, 4, generator=torch.Generator().manual_seed(1))
    shard = clips[rank * 4:(rank + 1) * 4]
    recompute_batch_norm(model, [{"pixel_values": shard[:2]}, {"pixel_values": shard[2:]}])
    with torch.no_grad():
        features = torch.tanh(model.backbone(clips.flatten(1)))
    # every process ends with the statistics of ALL the clips, not of the half it saw
    torch.testing.assert_close(model.norm.running_mean, features.mean(0), rtol=1e-4, atol=1e-5)
    halves = features.view(4, 2, 8).var(1).mean(0)  # the 4 batches' unbiased variances, averaged
    torch.testing.assert_close(model.norm.running_var, halves, rtol=1e-4, atol=1e-5)


def test_recompute_batch_norm_agrees_across_processes():
    # 2 gloo processes forked by accelerate's debug_launcher, from a fresh interpreter: a fork of this one, whose
    # thread pools other tests have started, can hang.
    code = ("from accelerate import debug_launcher; from test_weight_averaging import _recompute_on_this_process_shard"
            " as shard; debug_launcher(shard, num_processes=2)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("start", [1.0, -0.1])
def test_start_outside_the_epochs_is_refused(tmp_path, start):
    with pytest.raises(RecipeError, match="weight_averaging_start"):
        make_args(tmp_path, weight_averaging_start=start)


def test_weight_averaging_and_the_best_checkpoint_are_exclusive(tmp_path):
    with pytest.raises(RecipeError, match="load_best_model_at_end"):
        make_args(tmp_path, callbacks=["weight_averaging"], load_best_model_at_end=True, eval_strategy="epoch",
                  save_strategy="epoch")
