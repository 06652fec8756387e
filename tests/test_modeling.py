"""ThermalSlowFastConfig and ThermalSlowFastForVideoClassification: config, init, forward, save/load, training."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY_IMAGE_SIZE, TINY_NUM_FRAMES, make_tiny_model
from torch import nn

from thermal_hf import ThermalSlowFastConfig, ThermalSlowFastForVideoClassification


def _clip(batch=2, frames=TINY_NUM_FRAMES, height=40, width=60, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, height, width, generator=generator)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny convolutions gain little from 2 threads, and OpenMP threads spin badly when other processes share
    the 2 cores (measured: the training test 1.3 s alone, 25 s beside other test runs with 2 threads, 1.9 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return make_tiny_model(num_labels=5).eval()


# ---- config ---------------------------------------------------------------------------------------------------
def test_config_defaults_are_slowfast_r50_8x8():
    config = ThermalSlowFastConfig()
    assert config.model_type == "thermal_slowfast"
    assert config.model_depth == 50
    assert config.num_frames == 64
    assert (config.slow_temporal_stride, config.fast_temporal_stride) == (8, 2)
    assert config.slowfast_alpha == 4
    assert config.slowfast_channel_ratio == 8
    assert config.slowfast_fusion_channel_ratio == 2
    assert config.slowfast_fusion_kernel_size == 7
    assert config.image_size == (256, 384)
    assert (config.num_channels, config.stem_channels) == (1, 3)
    assert config.dropout == 0.8
    assert config.head_init_std == 0.01


def test_config_json_round_trip_keeps_int_label_ids(tmp_path):
    names = ["standing", "sitting", "lying"]
    config = ThermalSlowFastConfig(
        model_depth=18, num_frames=16, image_size=(32, 48), id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    config.save_pretrained(tmp_path)
    loaded = ThermalSlowFastConfig.from_pretrained(tmp_path)
    assert loaded.id2label == {0: "standing", 1: "sitting", 2: "lying"}
    assert all(isinstance(k, int) for k in loaded.id2label)
    assert loaded.label2id == {"standing": 0, "sitting": 1, "lying": 2}
    assert loaded.num_labels == 3
    assert loaded.image_size == (32, 48)
    assert loaded.to_dict() == config.to_dict()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model_depth": 34}, "model_depth"),
        ({"num_frames": 60}, "divisible"),
        ({"slow_temporal_stride": 6, "fast_temporal_stride": 4}, "multiple of fast_temporal_stride"),
        ({"image_size": (16, 16)}, "image_size"),
        ({"num_channels": 2}, "stem_channels"),
        ({"dropout": 1.0}, "dropout"),
        ({"slowfast_channel_ratio": 0}, "positive"),
        ({"test_time_views": 3}, "test_time_views"),
        ({"test_time_views": 8, "image_size": (48, 64)}, "square image_size"),
        ({"stem_pool": "no"}, "stem_pool must be true or false, got 'no'"),
        ({"slowfast_fusion_norm_act": "false"}, "slowfast_fusion_norm_act must be true or false"),
        ({"num_frames": "16"}, "num_frames must be an integer, got '16'"),
        ({"num_frames": 16.0}, "num_frames must be an integer, got 16.0"),
        ({"image_size": ("32", 48)}, "image_size must be two integers"),
        ({"dropout": "0.5"}, "dropout must be a number"),
    ],
)
def test_config_rejects_bad_values_with_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ThermalSlowFastConfig(**kwargs)


def test_a_hand_edited_config_json_of_the_wrong_type_is_refused_naming_the_field(tmp_path):
    from transformers import AutoModelForVideoClassification

    make_tiny_model(num_labels=3).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "slowfast_fusion_norm_act": "false"}))
    with pytest.raises(ValueError, match="slowfast_fusion_norm_act must be true or false"):
        AutoModelForVideoClassification.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"test_time_views": 3}, "test_time_views"), ({"image_size": (8, 8)}, "image_size"),
     ({"problem_type": "multi_label_classification"}, "problem_type")],
)
def test_from_pretrained_overrides_are_checked(tmp_path, kwargs, message):
    """`from_pretrained(..., key=value)` sets keys after the config's own checks: they are checked again."""
    from transformers import AutoConfig, AutoModelForVideoClassification

    make_tiny_model(num_labels=3).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=message):
        AutoConfig.from_pretrained(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=message):
        AutoModelForVideoClassification.from_pretrained(tmp_path, **kwargs)
    config = ThermalSlowFastConfig.from_pretrained(tmp_path)
    setattr(config, *next(iter(kwargs.items())))  # an attribute edit: refused when a model is built from it
    with pytest.raises(ValueError, match=message):
        ThermalSlowFastForVideoClassification(config)


def test_hidden_states_and_tuple_outputs(tiny_model):
    clip = _clip()
    with torch.no_grad():
        plain = tiny_model(clip)
        full = tiny_model(clip, output_hidden_states=True)
        as_tuple = tiny_model(clip, labels=torch.tensor([0, 1]), return_dict=False)
    assert plain.hidden_states is None
    assert torch.equal(full.logits, plain.logits)
    states = full.hidden_states
    assert len(states) == 11 and all(s.shape[0] == 2 for s in states)
    assert [s.ndim for s in states] == [5] * 11
    # Slow then Fast for each stage: the Fast pathway has alpha times the Slow's frames.
    alpha = tiny_model.config.slowfast_alpha
    assert all(fast.shape[2] == alpha * slow.shape[2] for slow, fast in zip(states[0:10:2], states[1:10:2]))
    assert states[-1].shape[1] == tiny_model.slowfast.blocks[-1].proj.in_features
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2 and torch.equal(as_tuple[1], plain.logits)


# ---- architecture and init ------------------------------------------------------------------------------------
def test_state_dict_layout_and_head_names(tiny_model):
    keys = tiny_model.state_dict().keys()
    assert "slowfast.blocks.0.multipathway_blocks.0.conv.weight" in keys
    assert "slowfast.blocks.6.proj.weight" in keys
    assert tiny_model.head_prefix == "slowfast.blocks.6."
    assert tiny_model.get_head_parameter_names() == {"slowfast.blocks.6.proj.weight", "slowfast.blocks.6.proj.bias"}
    head = dict(tiny_model.head_parameters())
    backbone = dict(tiny_model.backbone_parameters())
    assert set(head) == tiny_model.get_head_parameter_names()
    assert not set(head) & set(backbone)
    assert len(head) + len(backbone) == len(list(tiny_model.parameters()))
    # Adaptive head pooling: no pooling kernels that would assume 224-pixel crops.
    pools = [m for m in tiny_model.slowfast.blocks[5].pool]
    assert all(isinstance(p, nn.AdaptiveAvgPool3d) for p in pools)


def test_init_reproduces_pytorchvideo(tiny_model):
    torch.manual_seed(0)
    model = make_tiny_model(num_labels=5)
    final_bns = [m for m in model.modules() if getattr(m, "block_final_bn", False)]
    assert final_bns and all(torch.all(bn.weight == 0) for bn in final_bns)
    other_bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d) and not getattr(m, "block_final_bn", False)]
    assert all(torch.all(bn.weight == 1) and torch.all(bn.bias == 0) for bn in other_bns)
    conv = model.slowfast.blocks[4].multipathway_blocks[0].res_blocks[0].branch2.conv_b
    fan_out = conv.out_channels * math.prod(conv.kernel_size)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.05)
    proj = model.slowfast.blocks[6].proj
    assert proj.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert torch.all(proj.bias == 0)


def test_r18_and_r101_build():
    r18 = ThermalSlowFastForVideoClassification(ThermalSlowFastConfig(model_depth=18, num_labels=14))
    n18 = sum(p.numel() for p in r18.parameters())
    assert 10e6 < n18 < 12e6
    with torch.device("meta"):  # R101 structure only: building its 62M real weights is not needed here
        r101 = ThermalSlowFastForVideoClassification(ThermalSlowFastConfig(model_depth=101, num_labels=14))
    assert 60e6 < sum(p.numel() for p in r101.parameters()) < 64e6


# ---- forward ----------------------------------------------------------------------------------------------------
def test_forward_shapes_and_channel_layouts_agree(tiny_model):
    clip = _clip()
    with torch.no_grad():
        out = tiny_model(clip)
        out_c = tiny_model(clip.unsqueeze(2))
        at_size = tiny_model(torch.nn.functional.interpolate(clip, size=TINY_IMAGE_SIZE, mode="bilinear"))
    assert out.logits.shape == (2, 5)
    assert out.loss is None
    assert torch.equal(out.logits, out_c.logits)
    assert at_size.logits.shape == (2, 5)


def test_forward_loss_hard_and_soft_labels(tiny_model):
    clip = _clip()
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        out = tiny_model(clip, labels=labels)
        soft = tiny_model(clip, labels=torch.nn.functional.one_hot(labels, 5).float())
    expected = torch.nn.functional.cross_entropy(out.logits, labels)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert soft.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_forward_rejects_bad_inputs(tiny_model):
    with pytest.raises(ValueError, match=r"pixel_values' frames=12: must be divisible by slow_temporal_stride"):
        tiny_model(_clip(frames=12))
    with pytest.raises(ValueError, match="channels"):
        tiny_model(_clip().unsqueeze(2).repeat(1, 1, 2, 1, 1))
    with pytest.raises(ValueError, match="shape"):
        tiny_model(torch.zeros(16, 40, 60))


def test_test_time_views_average_the_symmetries_out_of_training_only():
    """8 views: the mean probability over the clip's 8 turns and mirrors, computed here by hand from one-view
    forwards; the answer is then the same for every turn and mirror of the clip. Training forwards ignore views."""
    torch.manual_seed(0)
    model = make_tiny_model(num_labels=5, image_size=(32, 32), head_init_std=1.0).eval()  # answers far from uniform
    clip = _clip(height=24, width=24)
    with torch.no_grad():
        single = model(clip).logits
        turns = [torch.rot90(clip, k, dims=(-2, -1)) for k in range(4)]
        by_hand = torch.stack([torch.softmax(model(v).logits, -1)
                               for t in turns for v in (t, torch.flip(t, dims=(-1,)))]).mean(0)
        model.config.test_time_views = 8
        views8 = model(clip, labels=torch.tensor([1, 3]))
        turned = model(torch.flip(torch.rot90(clip, 1, dims=(-2, -1)), dims=(-2,))).logits
        model.config.test_time_views = 4  # the clip, its mirrors and its turn by 180 degrees
        views4 = model(clip).logits
        by_hand4 = torch.stack([torch.softmax(model.single_view_logits(v), -1)
                                for v in (clip, clip.flip(-1), clip.flip(-2), clip.flip(-1).flip(-2))]).mean(0)
        assert torch.equal(model.single_view_logits(clip), single)
        model.train()  # (batch statistics: a train-mode forward answers differently from an eval-mode one)
        training, training_single = model(clip).logits, model.single_view_logits(clip)
    assert torch.allclose(views8.logits.exp(), by_hand, atol=1e-6)
    assert torch.allclose(views8.logits.exp().sum(-1), torch.ones(2), atol=1e-6)
    assert not torch.allclose(views8.logits.exp(), torch.softmax(single, -1), atol=1e-3)
    assert torch.allclose(turned, views8.logits, atol=1e-5)  # every symmetry of the clip gets the same answer
    assert views8.loss.item() == pytest.approx(-by_hand[[0, 1], [1, 3]].log().mean().item(), rel=1e-5)
    assert torch.allclose(views4.exp(), by_hand4, atol=1e-6)
    assert torch.equal(training, training_single)  # views only out of training (dropout 0: no randomness)


def test_test_time_views_of_a_sure_model_keep_finite_logits_and_loss(monkeypatch):
    """Every view sure of class 0 (a class-1 probability of e^-1000, 0 in float32): the averaged logits and the loss
    stay finite (the mean is taken in log space)."""
    model = make_tiny_model(num_labels=2, image_size=(32, 32)).eval()
    model.config.test_time_views = 8
    monkeypatch.setattr(model, "single_view_logits", lambda x: torch.tensor([[0.0, -1000.0]]).expand(len(x), 2))
    out = model(_clip(batch=1, height=24, width=24), labels=torch.tensor([1]))
    assert torch.isfinite(out.logits).all() and out.loss.item() == pytest.approx(1000.0, rel=1e-4)


def test_forward_has_no_var_kwargs_so_trainer_does_not_assume_scaled_loss(tmp_path):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = Trainer(model=make_tiny_model(num_labels=3), args=args)
    assert trainer.model_accepts_loss_kwargs is False


# ---- save / load --------------------------------------------------------------------------------------------
def test_save_load_gives_bit_identical_logits(tmp_path, tiny_model):
    from transformers import AutoModelForVideoClassification

    tiny_model.save_pretrained(tmp_path)
    loaded = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is ThermalSlowFastForVideoClassification
    saved, original = loaded.config.to_dict(), tiny_model.config.to_dict()
    saved.pop("_name_or_path"), original.pop("_name_or_path")
    assert saved == original
    clip = _clip()
    with torch.no_grad():
        assert torch.equal(tiny_model(clip).logits, loaded(clip).logits)


def test_saved_weights_are_as_readable_as_the_folders_other_files(tmp_path, tiny_model):
    import os
    import stat

    # safetensors writes 0600 whatever the umask; the config beside it follows the umask.
    old = os.umask(0o022)
    try:
        tiny_model.save_pretrained(tmp_path / "shared")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "shared").iterdir()}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644}


def test_new_head_with_ignore_mismatched_sizes_keeps_backbone(tmp_path):
    torch.manual_seed(0)
    source = make_tiny_model(num_labels=14)
    with torch.no_grad():  # make the saved head recognisable
        source.slowfast.blocks[6].proj.weight.fill_(0.5)
    source.save_pretrained(tmp_path)
    names = [f"c{i}" for i in range(5)]
    loaded = ThermalSlowFastForVideoClassification.from_pretrained(
        tmp_path, num_labels=5, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        ignore_mismatched_sizes=True,
    )
    assert loaded.config.num_labels == 5
    head = loaded.get_head_parameter_names()
    src_state = source.state_dict()
    for name, tensor in loaded.state_dict().items():
        if name not in head:
            assert torch.equal(tensor, src_state[name]), name
    proj = loaded.slowfast.blocks[6].proj
    assert proj.weight.shape == (5, src_state["slowfast.blocks.6.proj.weight"].shape[1])
    # Re-initialised through _init_weights (N(0, 0.01), bias 0), not left empty.
    assert proj.weight.std().item() == pytest.approx(0.01, rel=0.25)
    assert torch.all(proj.bias == 0)


# ---- training ---------------------------------------------------------------------------------------------------
def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make_tiny_model(num_labels=3).train()
    clip = _clip(batch=4, seed=1)
    labels = torch.tensor([0, 1, 2, 1])
    clip[labels == 1] += 0.5  # give the classes something to tell them apart
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = model(clip, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(use_reentrant):
    torch.manual_seed(0)
    plain = make_tiny_model(num_labels=3).train()
    checkpointed = make_tiny_model(num_labels=3).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    assert checkpointed.gradient_checkpointing
    clip, labels = _clip(batch=2), torch.tensor([0, 2])
    plain(clip, labels=labels).loss.backward()
    checkpointed(clip, labels=labels).loss.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
