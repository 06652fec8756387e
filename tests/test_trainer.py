"""ThermalTrainer: loss against hand computations, gradient accumulation, parameter groups, sampler, warm-up."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import ImageClassifierOutput

from thermal_hf.configs import ThermalTrainingArguments
from thermal_hf.training.data import collate_clips
from thermal_hf.training.trainer import ClassBalancedSampler, ThermalTrainer, classification_loss

NUM_LABELS = 3
LABELS = [0, 0, 1, 2, 0, 0, 1, 0]


class ToyClassifier(nn.Module):
    """No BatchNorm (its batch statistics differ between batch 4 and 2 x 2) and no dropout: gradients comparable."""

    def __init__(self, in_features: int = 24, num_labels: int = NUM_LABELS):
        super().__init__()
        self.config = PreTrainedConfig(num_labels=num_labels)
        self.backbone = nn.Linear(in_features, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, num_labels)

    def forward(self, pixel_values, labels=None):
        return ImageClassifierOutput(logits=self.head(self.norm(torch.tanh(self.backbone(pixel_values.flatten(1))))))

    def get_head_parameter_names(self):
        return {"head.weight", "head.bias"}


class ToyClips(torch.utils.data.Dataset):
    def __init__(self, labels=LABELS, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.labels = np.asarray(labels)
        self.clips = torch.randn(len(labels), 2, 3, 4, generator=generator)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"pixel_values": self.clips[i], "labels": int(self.labels[i])}

    def class_counts(self, num_labels=NUM_LABELS):
        return np.bincount(self.labels, minlength=num_labels)


def make_args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        do_eval=False,
        optim="sgd",
        learning_rate=1.0,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        backbone_lr_multiplier=1.0,
        train_sampling_strategy="sequential",
        disable_tqdm=True,
        seed=0,
    )
    kwargs.update(overrides)
    return ThermalTrainingArguments(**kwargs)


def one_step_delta(tmp_path, model, dataset, **overrides):
    """Parameter change after one optimizer step of plain SGD with lr 1: minus the gradient."""
    args = make_args(tmp_path, max_steps=1, **overrides)
    trainer = ThermalTrainer(model=model, args=args, train_dataset=dataset, data_collator=collate_clips)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    return {n: (p.detach() - before[n]) for n, p in model.named_parameters()}, trainer


# ---------------------------------------------------------------------------------------------------------------
def test_weighted_cross_entropy_equals_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, dtype=torch.float16)  # mixed precision logits: the loss is float32
    labels = torch.tensor([0, 1, 1, 3, 2])
    weights = torch.tensor([0.5, 2.0, 1.0, 4.0])
    weighted, item_weights = classification_loss(logits, labels, class_weights=weights)
    assert weighted.dtype == torch.float32
    log_probs = torch.log_softmax(logits.float(), -1)
    by_hand = sum(-weights[y] * log_probs[i, y] for i, y in enumerate(labels.tolist())) / weights[labels].sum()
    assert (weighted.sum() / item_weights.sum()).item() == pytest.approx(by_hand.item(), rel=1e-6)
    reference = F.cross_entropy(logits.float(), labels, weight=weights)
    assert (weighted.sum() / item_weights.sum()).item() == pytest.approx(reference.item(), rel=1e-6)


def test_label_smoothing_and_focal_reduce_to_references():
    torch.manual_seed(1)
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    weighted, w = classification_loss(logits, labels, label_smoothing=0.1)
    assert (weighted.sum() / w.sum()).item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)
    focal0, _ = classification_loss(logits, labels, focal_gamma=0.0)
    assert torch.allclose(focal0, F.cross_entropy(logits, labels, reduction="none"))
    focal2, _ = classification_loss(logits, labels, focal_gamma=2.0)
    p = torch.softmax(logits, -1)[torch.arange(6), labels]
    assert torch.allclose(focal2, -(1 - p) ** 2 * p.log(), atol=1e-6)
    # soft targets (mixup) with class weights: weight = target-weighted mix of class weights
    soft = torch.full((6, 5), 0.2)
    weights = torch.arange(1.0, 6.0)
    _, w = classification_loss(logits, soft, class_weights=weights)
    assert torch.allclose(w, torch.full((6,), 3.0))


@pytest.mark.parametrize(
    "loss_keys",
    [
        dict(class_weighting="inverse_frequency"),
        dict(class_weighting="effective_number", loss="focal", focal_gamma=2.0, label_smoothing_factor=0.1),
        dict(class_weighting="none"),
    ],
)
def test_gradient_accumulation_matches_full_batch(tmp_path, loss_keys):
    torch.manual_seed(0)
    base = ToyClassifier()
    dataset = ToyClips(LABELS[:4])
    full, trainer = one_step_delta(tmp_path, copy.deepcopy(base), dataset, per_device_train_batch_size=4, **loss_keys)
    accumulated, _ = one_step_delta(
        tmp_path, copy.deepcopy(base), dataset, per_device_train_batch_size=2, gradient_accumulation_steps=2, **loss_keys
    )
    for name in full:
        assert torch.allclose(full[name], accumulated[name], atol=1e-6), name
    if loss_keys.get("loss", "cross_entropy") == "cross_entropy" and "label_smoothing_factor" not in loss_keys:
        # and both equal torch's weighted-mean cross-entropy over the 4 clips
        model = copy.deepcopy(base)
        batch = collate_clips([dataset[i] for i in range(4)])
        weight = trainer.class_weights
        F.cross_entropy(model(batch["pixel_values"]).logits, batch["labels"], weight=weight).backward()
        for name, param in model.named_parameters():
            assert torch.allclose(full[name], -param.grad, atol=1e-6), name


def test_logged_loss_is_not_multiplied_by_accumulation(tmp_path):
    torch.manual_seed(0)
    base, dataset = ToyClassifier(), ToyClips(LABELS[:4])
    losses = []
    for bs, ga in ((4, 1), (2, 2)):
        args = make_args(tmp_path, max_steps=1, per_device_train_batch_size=bs, gradient_accumulation_steps=ga,
                         logging_steps=1, learning_rate=0.0)
        trainer = ThermalTrainer(model=copy.deepcopy(base), args=args, train_dataset=dataset, data_collator=collate_clips)
        losses.append(trainer.train().training_loss)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_mixup_and_remove_unused_columns_train(tmp_path):
    # remove_unused_columns: True must not strip what the collator builds (the dataset yields model inputs only)
    args = make_args(tmp_path, max_steps=2, per_device_train_batch_size=4, remove_unused_columns=True,
                     class_weighting="inverse_frequency", learning_rate=0.1)
    trainer = ThermalTrainer(model=ToyClassifier(), args=args, train_dataset=ToyClips(), data_collator=collate_clips,
                             mixup_alpha=0.4, cutmix_alpha=1.0)
    result = trainer.train()
    assert math.isfinite(result.training_loss) and trainer.state.global_step == 2


# ---------------------------------------------------------------------------------------------------------------
def test_differential_learning_rates_and_no_decay_on_norms(tmp_path):
    from conftest import make_tiny_model

    model = make_tiny_model(num_labels=5)
    args = make_args(tmp_path, optim="adamw_torch", learning_rate=0.01, weight_decay=0.05, backbone_lr_multiplier=0.1)
    trainer = ThermalTrainer(model=model, args=args, train_dataset=ToyClips(), data_collator=collate_clips)
    optimizer = trainer.create_optimizer()
    by_name = {id(p): n for n, p in model.named_parameters()}
    groups = {g["group_name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    assert groups["head"]["lr"] == pytest.approx(0.01) and groups["backbone"]["lr"] == pytest.approx(0.001)
    assert groups["backbone"]["lr"] == pytest.approx(0.1 * groups["head"]["lr"])
    head = model.get_head_parameter_names()
    for name, group in groups.items():
        names = [by_name[id(p)] for p in group["params"]]
        assert all((n in head) == name.startswith("head") for n in names)
        if name.endswith("no_decay"):
            assert group["weight_decay"] == 0.0
            assert all(n.endswith("bias") or ".norm" in n or "_norm" in n for n in names), names
        else:
            assert group["weight_decay"] == 0.05
            assert not any(n.endswith("bias") or "norm" in n.rsplit(".", 2)[-2] for n in names), names
    # every trainable parameter is in exactly one group
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    # the scheduler keeps the ratio
    trainer.create_scheduler(num_training_steps=10)
    optimizer.step()
    trainer.lr_scheduler.step()
    lrs = {g["group_name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["backbone"] == pytest.approx(0.1 * lrs["head"])


def test_warmup_epochs_become_steps(tmp_path):
    args = make_args(tmp_path, per_device_train_batch_size=2, warmup_epochs=1.5, num_train_epochs=3,
                     lr_scheduler_type="cosine")
    trainer = ThermalTrainer(model=ToyClassifier(), args=args, train_dataset=ToyClips(), data_collator=collate_clips)
    trainer.create_optimizer()
    trainer.create_scheduler(num_training_steps=12)
    assert trainer.update_steps_per_epoch() == 4
    assert trainer.args.warmup_steps == 6  # ceil(1.5 x 4)
    lrs = []
    for _ in range(8):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert lrs[0] == 0.0 and lrs[3] == pytest.approx(0.5) and max(lrs) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------------
def test_class_balanced_sampler_balances_and_is_deterministic():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    sampler = ClassBalancedSampler(labels, num_samples=30000, seed=3)
    drawn = labels[list(sampler)]
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(shares, 1 / 3, atol=0.02)
    assert list(sampler) == list(ClassBalancedSampler(labels, num_samples=30000, seed=3))
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and len(sampler) == 30000


def test_class_balanced_sampler_shards_one_sequence_across_processes():
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    labels = np.array([0] * 12 + [1] * 3 + [2])
    sequence = list(ClassBalancedSampler(labels, seed=5))
    shards = []
    for rank in range(2):  # what each process sees after accelerate prepares the DataLoader
        sampler = ClassBalancedSampler(labels, seed=5)
        shards.append(list(BatchSamplerShard(BatchSampler(sampler, 2, False), num_processes=2, process_index=rank)))
    interleaved = [i for pair in zip(*shards) for batch in pair for i in batch]
    assert interleaved == sequence


def test_trainer_uses_balanced_sampler(tmp_path):
    trainer = ThermalTrainer(model=ToyClassifier(), args=make_args(tmp_path), train_dataset=ToyClips(),
                             data_collator=collate_clips, sampling="class_balanced")
    assert isinstance(trainer._get_train_sampler(), ClassBalancedSampler)


def test_collate_clips_stacks_arrays_and_tensors_and_falls_back_for_bf16():
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((8, 4, 6)).astype(np.float32) for _ in range(3)]
    mixed = [clips[0], torch.from_numpy(clips[1]), torch.from_numpy(clips[2])]
    batch = collate_clips([{"pixel_values": clip, "labels": i} for i, clip in enumerate(mixed)])
    assert batch["pixel_values"].dtype == torch.float32 and batch["pixel_values"].shape == (3, 8, 4, 6)
    torch.testing.assert_close(batch["pixel_values"], torch.stack([torch.from_numpy(c) for c in clips]))
    assert batch["labels"].tolist() == [0, 1, 2] and batch["labels"].dtype == torch.long
    # numpy cannot hold bf16: the collate falls back to torch.stack and keeps the dtype
    bf16 = [{"pixel_values": torch.from_numpy(c).to(torch.bfloat16), "labels": 0} for c in clips]
    assert collate_clips(bf16)["pixel_values"].dtype == torch.bfloat16


def _collate_and_report_sharing(batch):
    out = collate_clips(batch)
    out["built_in_shared_memory"] = torch.tensor(out["pixel_values"].is_shared())
    return out


def test_collate_clips_in_a_worker_stacks_into_shared_memory():
    clips = [np.full((4, 3, 2), float(i), dtype=np.float32) for i in range(5)]
    items = [{"pixel_values": c, "labels": i} for i, c in enumerate(clips)]
    loader = torch.utils.data.DataLoader(items, batch_size=2, num_workers=1, collate_fn=_collate_and_report_sharing)
    batches = list(loader)
    assert [b["labels"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    for b in batches:  # no second copy into shared memory on the way to the main process
        assert b["built_in_shared_memory"].item()
        torch.testing.assert_close(b["pixel_values"], torch.stack([torch.from_numpy(clips[i]) for i in b["labels"]]))
    assert not collate_clips(items[:2])["pixel_values"].is_shared()  # the main process: plain numpy memory


@pytest.mark.parametrize("train", [False, True])
def test_dataset_items_equal_the_processor_steps_and_leave_the_data_alone(converted_dataset, train):
    """Clean windows skip the repair's copy; the items are still exactly clean -> fit -> augment -> normalize."""
    from thermal_hf.data.convert import load_converted
    from thermal_hf.data.transforms import AugmentationConfig, augment, has_invalid
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
    from thermal_hf.training.data import ThermalClipDataset

    split = load_converted(converted_dataset)["train"]
    processor = ThermalVideoProcessor(num_frames=12)  # the converted windows hold 16 frames: fit_length cuts
    config = AugmentationConfig(random_resized_crop_scale=(0.6, 1.0), horizontal_flip_prob=0.5, temperature_gain=0.2,
                                temporal_jitter=2)
    dataset = ThermalClipDataset(split, processor, config, train=train, seed=3)
    reference = ThermalClipDataset(split, processor, config, train=train, seed=3)._generator()
    before = [np.array(dataset._reader.frames(i)) for i in range(len(dataset))]
    flags = {has_invalid(frames) for frames in before}
    assert flags == {True, False}, "the synthetic split needs windows with and without invalid pixels"
    for i in range(len(dataset)):
        frames = processor.fit_length(processor.clean(before[i]))
        if train:
            frames, _ = augment(frames, None, config, reference)
        np.testing.assert_array_equal(dataset[i]["pixel_values"].numpy(), processor.normalize(frames))
    for i in range(len(dataset)):  # the memory-mapped rows are untouched
        np.testing.assert_array_equal(dataset._reader.frames(i), before[i])


def _worker_read(dataset, order, *, workers, epochs=(0,), persistent=False):
    """The augmented clips DataLoader workers give for ``order`` (a list of indices), one tensor per epoch."""
    loader = torch.utils.data.DataLoader(dataset, sampler=order, batch_size=2, num_workers=workers,
                                         persistent_workers=persistent, collate_fn=collate_clips)
    read = []
    for epoch in epochs:
        dataset.set_epoch(epoch)
        read.append(torch.cat([batch["pixel_values"] for batch in loader]))
    return read


def test_workers_augment_an_item_by_its_epoch_and_draw_not_by_the_worker(converted_dataset):
    """What makes a resumed run with DataLoader workers repeat the uninterrupted one: an item's augmentation is
    the same whichever worker reads it, however many there are, and in a loader started mid-epoch."""
    from thermal_hf.data.convert import load_converted
    from thermal_hf.data.transforms import AugmentationConfig
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
    from thermal_hf.training.data import SamplerDraw, ThermalClipDataset

    config = AugmentationConfig(random_resized_crop_scale=(0.6, 1.0), horizontal_flip_prob=0.5, temperature_gain=0.2)
    dataset = ThermalClipDataset(load_converted(converted_dataset)["train"], ThermalVideoProcessor(num_frames=12),
                                 config, train=True, seed=3)
    order = list(range(min(len(dataset), 8)))[::-1]
    (one,) = _worker_read(dataset, order, workers=1)
    (two,) = _worker_read(dataset, order, workers=2)
    torch.testing.assert_close(two, one, rtol=0, atol=0)
    (tail,) = _worker_read(dataset, order[3:], workers=2)  # a resumed epoch: its first items skipped
    torch.testing.assert_close(tail, one[3:], rtol=0, atol=0)
    # Persistent workers (forked once) follow set_epoch: the next epoch draws anew, as fresh workers draw it.
    first, second = _worker_read(dataset, order, workers=2, epochs=(0, 1), persistent=True)
    torch.testing.assert_close(first, one, rtol=0, atol=0)
    assert not torch.equal(second, first)
    torch.testing.assert_close(second, _worker_read(dataset, order, workers=1, epochs=(1,))[0], rtol=0, atol=0)
    # Two draws of one item by a sampler with replacement are augmented apart, each always alike.
    draws = [SamplerDraw(order[0], 0), SamplerDraw(order[0], 1)]
    (twice,) = _worker_read(dataset, draws, workers=1)
    assert not torch.equal(twice[0], twice[1])
    torch.testing.assert_close(_worker_read(dataset, draws[1:], workers=1)[0][0], twice[1], rtol=0, atol=0)


def test_class_balanced_draws_carry_their_position():
    draws = list(ClassBalancedSampler(np.array([0] * 5 + [1]), seed=2))
    assert [d.draw for d in draws] == list(range(6))
    assert pickle.loads(pickle.dumps(draws[3])).draw == 3 and pickle.loads(pickle.dumps(draws[3])) == draws[3]


def test_resumed_early_stopping_takes_the_recipe_patience_and_keeps_its_count(tmp_path, caplog):
    from transformers import EarlyStoppingCallback

    args = make_args(tmp_path, restore_callback_states_from_checkpoint=True)
    trainer = ThermalTrainer(model=ToyClassifier(), args=args, train_dataset=ToyClips(), data_collator=collate_clips,
                             callbacks=[EarlyStoppingCallback(early_stopping_patience=5)])
    # what a checkpoint of a run with patience 2 holds, one evaluation without improvement in
    trainer.state.stateful_callbacks = {"EarlyStoppingCallback": {
        "args": {"early_stopping_patience": 2, "early_stopping_threshold": 0.0},
        "attributes": {"early_stopping_patience_counter": 1}}}
    with caplog.at_level("WARNING", logger="thermal_hf.training.trainer"):
        trainer._load_callback_state()
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)]
    assert callback.early_stopping_patience == 5 and callback.early_stopping_patience_counter == 1
    assert "early_stopping_patience 2 -> 5" in caplog.text
