"""import-checkpoint: pytorchvideo zoo and MMAction2 checkpoints -> saved thermal-hf models, proven offline.

The pytorchvideo proof builds the zoo architecture with random weights, saves it as a zoo file, imports it and
compares logits on the same clip. The MMAction2 proof runs compat/mmaction2_parity.py against MMAction2's own
code when an interpreter with mmaction2 is available (THERMAL_MMACTION_PYTHON or /tmp/mmenv), and skips
otherwise; a renamed-state-dict round trip checks the key mapping without it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from thermal_hf.errors import CheckpointError
from thermal_hf.models.thermal_slowfast import convert_checkpoint as cc

REPO = Path(__file__).resolve().parents[1]
FRAMES, SIZE = 16, (32, 48)


def randomize_norms(net: nn.Module, seed: int = 1) -> None:
    """BatchNorm affine parameters and statistics away from identity, so every tensor matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)


def make_pytorchvideo_net(depth: int = 18, num_classes: int = 400, seed: int = 0, **kwargs) -> nn.Module:
    """The zoo architecture (`pytorchvideo.models.hub.slowfast_r50/_r101`) with random weights.

    Head pooling is adaptive so that small clips run; pooling has no parameters, the state dict is the zoo's.
    """
    # Imported here, after thermal_hf (which silences pytorchvideo's torch.jit import-time warning).
    from pytorchvideo.models.slowfast import create_slowfast

    torch.manual_seed(seed)
    kwargs.setdefault("slowfast_fusion_conv_kernel_size", (5, 1, 1) if depth == 101 else (7, 1, 1))
    net = create_slowfast(
        model_depth=depth,
        model_num_class=num_classes,
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
        **kwargs,
    )
    randomize_norms(net, seed + 1)
    return net.eval()


def grey_clip(seed: int = 0, frames: int = FRAMES, size=SIZE) -> torch.Tensor:
    return torch.rand(1, frames, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def reference_logits(net: nn.Module, clip: torch.Tensor, slow_stride: int = 8, fast_stride: int = 2) -> torch.Tensor:
    """The original network on the pathways our model packs: RGB = grey repeated, every n-th frame."""
    rgb = clip.unsqueeze(1).repeat(1, 3, 1, 1, 1)  # (B, 3, T, H, W)
    with torch.no_grad():
        return net([rgb[:, :, ::slow_stride].contiguous(), rgb[:, :, ::fast_stride].contiguous()])


def save_zoo(net: nn.Module, path: Path) -> Path:
    torch.save({"model_state": net.state_dict(), "model_epoch": 196}, path)
    return path


def load_model(path: Path):
    from thermal_hf.models.thermal_slowfast import ThermalSlowFastForVideoClassification

    return ThermalSlowFastForVideoClassification.from_pretrained(path).eval()


def _import(src: Path, out: Path, **kwargs) -> Path:
    defaults = dict(format="pytorchvideo", num_labels=400, labels=[f"k{i}" for i in range(400)], model_depth=18,
                    num_frames=FRAMES, image_size=SIZE, dropout=0.5)
    defaults.update(kwargs)
    return cc.import_checkpoint(src, out, **defaults)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    net = make_pytorchvideo_net(depth=18)
    return net, save_zoo(net, tmp_path_factory.mktemp("zoo") / "SLOWFAST_tiny.pyth")


def test_pytorchvideo_import_reproduces_logits(tiny_zoo, tmp_path):
    net, src = tiny_zoo
    out = _import(src, tmp_path / "model", keep_head=True)
    model = load_model(out)
    clip = grey_clip()
    with torch.no_grad():
        ours = model(pixel_values=clip).logits
    expected = reference_logits(net, clip)
    assert ours.shape == (1, 400)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_fresh_head_keeps_every_backbone_tensor(tiny_zoo, tmp_path):
    net, src = tiny_zoo
    out = _import(src, tmp_path / "model", num_labels=3, labels=["a", "b", "c"])
    model = load_model(out)
    ours = model.slowfast.state_dict()
    source = net.state_dict()
    head = {k for k in source if k.startswith("blocks.6.")}
    assert head == {"blocks.6.proj.weight", "blocks.6.proj.bias"}
    assert set(ours) == set(source)
    for key in set(source) - head:
        assert torch.equal(ours[key], source[key]), key
    assert ours["blocks.6.proj.weight"].shape == (3, 2304)
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}
    # Same features before the head: compare the pooled features of both networks.
    clip = grey_clip(1)
    rgb = clip.unsqueeze(1).repeat(1, 3, 1, 1, 1)
    with torch.no_grad():
        x = [rgb[:, :, ::8], rgb[:, :, ::2]]
        x_ours = model.pack_pathways(clip)
        for a, b in zip(net.blocks[:-1], model.slowfast.blocks[:-1]):
            x, x_ours = a(x), b(x_ours)
    torch.testing.assert_close(x_ours, x, rtol=1e-5, atol=1e-6)


def test_saved_model_config_processor_and_provenance(tiny_zoo, tmp_path):
    from transformers import AutoConfig, AutoModelForVideoClassification, AutoVideoProcessor

    import thermal_hf  # noqa: F401 (registers the Auto classes)

    _, src = tiny_zoo
    out = _import(src, tmp_path / "model", num_labels=14, labels=None)
    assert (out / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(out)
    assert config.num_labels == 14 and config.model_depth == 18 and config.slowfast_fusion_kernel_size == 7
    assert config.base_checkpoint == {"file": src.name, "sha256": cc.sha256_of(src), "format": "pytorchvideo"}
    from thermal_hf.data.categories import DEFAULT_CATEGORY_NAMES

    assert [config.id2label[i] for i in range(14)] == list(DEFAULT_CATEGORY_NAMES)
    model = AutoModelForVideoClassification.from_pretrained(out)
    assert type(model).__name__ == "ThermalSlowFastForVideoClassification"
    processor = AutoVideoProcessor.from_pretrained(out)
    assert processor.num_frames == FRAMES and processor.mean == cc.PRETRAINED_MEAN and processor.std == cc.PRETRAINED_STD
    record = json.loads((out / "conversion.json").read_text())
    assert record["source"]["sha256"] == cc.sha256_of(src)
    assert record["architecture"]["model_depth"] == 18
    assert record["backbone_tensors_loaded"] == len(torch.load(src, weights_only=True)["model_state"]) - 2


@pytest.mark.slow
def test_r50_zoo_architecture_imports_exactly(tmp_path):
    """The one full-size check: SLOWFAST_8x8_R50's architecture, every tensor, logits on a small clip."""
    net = make_pytorchvideo_net(depth=50)
    src = save_zoo(net, tmp_path / "SLOWFAST_8x8_R50.pyth")
    out = cc.import_checkpoint(src, tmp_path / "model", format="pytorchvideo", num_labels=400, keep_head=True,
                               num_frames=16, image_size=(64, 96))
    model = load_model(out)
    assert model.config.model_depth == 50
    ours, source = model.slowfast.state_dict(), net.state_dict()
    assert set(ours) == set(source) and all(torch.equal(ours[k], source[k]) for k in source)
    clip = grey_clip(2, 16, (64, 96))
    with torch.no_grad():
        logits = model(pixel_values=clip).logits
    # Float32 through 50 layers: the weights are equal to the bit (above), but the CPU's kernels may sum in
    # another order for the two modules (an AVX512 machine differed by 2e-5, 5e-5 relative); a wrong mapping
    # differs by orders of magnitude more.
    torch.testing.assert_close(logits, reference_logits(net, clip), rtol=1e-4, atol=1e-5)


def test_r101_fusion_kernel_is_read_from_the_checkpoint(tmp_path):
    """The zoo's R101 uses fusion kernel 5: the state dict says so (checked on the stem fusion only)."""
    state = make_pytorchvideo_net(depth=18, slowfast_fusion_conv_kernel_size=(5, 1, 1)).state_dict()
    arch = cc.infer_architecture(state)
    assert arch["slowfast_fusion_kernel_size"] == 5 and arch["model_depth"] == 18
    assert arch["slowfast_fusion_norm_act"] is True and arch["source_num_classes"] == 400


# ---- failures --------------------------------------------------------------------------------------------
def _tweaked(tiny_zoo, tmp_path, edit) -> Path:
    net, _ = tiny_zoo
    state = dict(net.state_dict())
    edit(state)
    return save_zoo_state(state, tmp_path / "bad.pyth")


def save_zoo_state(state: dict, path: Path) -> Path:
    torch.save({"model_state": state}, path)
    return path


def test_missing_key_is_refused(tiny_zoo, tmp_path):
    src = _tweaked(tiny_zoo, tmp_path, lambda s: s.pop("blocks.2.multipathway_blocks.1.res_blocks.0.branch2.conv_b.weight"))
    with pytest.raises(CheckpointError, match=r"missing in the checkpoint \(1\)[\s\S]*branch2\.conv_b\.weight"):
        _import(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unexpected_key_is_refused(tiny_zoo, tmp_path):
    src = _tweaked(tiny_zoo, tmp_path, lambda s: s.__setitem__("blocks.3.extra.weight", torch.zeros(2)))
    with pytest.raises(CheckpointError, match=r"unexpected in the checkpoint \(1\)[\s\S]*blocks\.3\.extra\.weight"):
        _import(src, tmp_path / "out")


def test_shape_mismatch_is_refused(tiny_zoo, tmp_path):
    key = "blocks.1.multipathway_fusion.conv_fast_to_slow.weight"
    src = _tweaked(tiny_zoo, tmp_path, lambda s: s.__setitem__(key, s[key][:, :, :5].contiguous()))
    # The stem fusion still says kernel 7, so the model is built with 7 and stage 1's kernel-5 tensor is refused.
    with pytest.raises(CheckpointError, match=re.escape(f"{key}: checkpoint (64, 32, 5, 1, 1) vs model (64, 32, 7, 1, 1)")):
        _import(src, tmp_path / "out")


def test_missing_batch_counters_are_filled(tiny_zoo, tmp_path):
    src = _tweaked(tiny_zoo, tmp_path, lambda s: [s.pop(k) for k in [k for k in s if k.endswith("num_batches_tracked")]])
    out = _import(src, tmp_path / "out", num_labels=2, labels=["a", "b"])
    assert json.loads((out / "conversion.json").read_text())["num_batches_tracked_filled"] > 0


def test_wrong_format_depth_and_file_are_refused(tiny_zoo, tmp_path):
    _, src = tiny_zoo
    with pytest.raises(CheckpointError, match="--format pytorchvideo"):
        _import(src, tmp_path / "out", format="mmaction2")
    with pytest.raises(CheckpointError, match="R18, not R50"):
        _import(src, tmp_path / "out", model_depth=50)
    with pytest.raises(CheckpointError, match="not found"):
        _import(tmp_path / "nope.pyth", tmp_path / "out")
    with pytest.raises(ValueError, match="2 labels given for num_labels=3"):
        _import(src, tmp_path / "out", num_labels=3, labels=["a", "b"])
    with pytest.raises(CheckpointError, match="keep_head needs num_labels"):
        _import(src, tmp_path / "out", num_labels=3, labels=["a", "b", "c"], keep_head=True)


class _Evil:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_pickled_code_is_never_executed(tmp_path, capsys):
    src = tmp_path / "evil.pyth"
    torch.save({"model_state": {"x": torch.zeros(1)}, "payload": _Evil()}, src)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        _import(src, tmp_path / "out")
    assert "arbitrary code ran" not in capsys.readouterr().out


def test_numpy_metadata_is_accepted(tiny_zoo, tmp_path):
    """Zoo files carry training metadata; numpy scalars/arrays there must not block a weights_only load."""
    import numpy as np

    net, _ = tiny_zoo
    src = tmp_path / "meta.pyth"
    torch.save({"model_state": net.state_dict(), "epoch": np.int64(196), "meta": {"lr": np.float64(0.1),
                "mean": np.array([0.45, 0.45, 0.45])}}, src)
    assert cc.load_source_state_dict(src, "pytorchvideo").keys() == net.state_dict().keys()


def test_a_bare_state_dict_is_imported_and_a_format_mismatch_named(tiny_zoo, tmp_path):
    net, _ = tiny_zoo
    bare = tmp_path / "bare.pyth"
    torch.save(net.state_dict(), bare)  # no `model_state` wrapper: what `torch.save(net.state_dict())` gives
    assert cc.load_source_state_dict(bare, "pytorchvideo").keys() == net.state_dict().keys()
    with pytest.raises(CheckpointError, match="keys look like a pytorchvideo checkpoint.*--format pytorchvideo"):
        cc.load_source_state_dict(bare, "mmaction2")
    mma = tmp_path / "mma.pth"
    torch.save({"backbone.slow_path.conv1.conv.weight": torch.zeros(1), "cls_head.fc_cls.weight": torch.zeros(1)}, mma)
    with pytest.raises(CheckpointError, match="keys look like a mmaction2 checkpoint.*--format mmaction2"):
        cc.load_source_state_dict(mma, "pytorchvideo")


@pytest.mark.parametrize("content, expected", [
    ({"model_state": [torch.zeros(1)]}, "'model_state' must be a dict of tensors, found a list"),
    ({1: 2, "a": 3}, r"found the entries \['1', 'a'\]"),
    ({"model_state": {0: torch.zeros(1)}}, "not tensors under string keys: \\['0'\\]"),
    ([torch.zeros(1)], "found a list"),
])
def test_malformed_checkpoints_are_named_errors(tmp_path, content, expected):
    path = tmp_path / "odd.pyth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=expected) as err:
        cc.load_source_state_dict(path, "pytorchvideo")
    assert str(path) in str(err.value)


def test_cli_refuses_bad_labels_and_output_before_writing(tiny_zoo, tmp_path, capsys):
    _, src = tiny_zoo
    for num_labels in ("0", "-2"):
        out = tmp_path / f"n{num_labels}"
        assert cc.main([str(src), str(out), "--format", "pytorchvideo", "--num_labels", num_labels]) == 2
        assert "num_labels must be a positive integer" in capsys.readouterr().err and not out.exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    assert cc.main([str(src), str(a_file), "--format", "pytorchvideo", "--num_labels", "2"]) == 2
    assert "the output folder is an existing file" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"


def test_cli(tiny_zoo, tmp_path, capsys):
    _, src = tiny_zoo
    out = tmp_path / "cli_model"
    argv = [str(src), str(out), "--format", "pytorchvideo", "--num_labels", "2", "--labels", "x", "y",
            "--num_frames", "16", "--image_size", "32", "48"]
    assert cc.main(argv) == 0
    assert load_model(out).config.id2label == {0: "x", 1: "y"}
    assert cc.main([str(src), str(tmp_path / "o2"), "--format", "mmaction2", "--num_labels", "2"]) == 2
    assert "error:" in capsys.readouterr().err
    from thermal_hf.cli import main as cli_main

    assert cli_main(["import-checkpoint", str(src), str(tmp_path / "o3"), "--format", "pytorchvideo",
                     "--num_labels", "2", "--model_depth", "18", "--num_frames", "16"]) == 0


@pytest.mark.parametrize("wrap", [
    lambda sd: {"state_dict": sd, "epoch": 3},  # Lightning / MMAction2 style
    lambda sd: {"model": sd, "optimizer": {}},
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}},  # a Lightning module's attribute
    lambda sd: {f"backbone.{k}": v for k, v in sd.items()},  # a pytorchvideo net kept as `backbone`
    lambda sd: {"model_state": {f"module.{k}": v for k, v in sd.items()}},  # DistributedDataParallel
])
def test_wrapped_and_prefixed_state_dicts_import(tiny_zoo, tmp_path, wrap):
    net, _ = tiny_zoo
    src = tmp_path / "wrapped.pth"
    torch.save(wrap(net.state_dict()), src)
    assert cc.load_source_state_dict(src, "pytorchvideo").keys() == net.state_dict().keys()
    with pytest.raises(CheckpointError, match="look like a pytorchvideo checkpoint.*--format pytorchvideo"):
        cc.load_source_state_dict(src, "mmaction2")


def test_a_thermal_hf_model_is_pointed_to_from_pretrained(tiny_zoo, tmp_path):
    net, _ = tiny_zoo
    src = tmp_path / "ours.pth"
    torch.save({f"slowfast.{k}": v for k, v in net.state_dict().items()}, src)
    with pytest.raises(CheckpointError, match="already a thermal-hf model.*from_pretrained"):
        _import(src, tmp_path / "out")


@pytest.mark.parametrize("damage, expected", [
    (lambda t: t.clone().index_fill_(0, torch.tensor([0]), float("nan")), "values that are not finite"),  # a copy:
    (lambda t: t.long(), "torch.int64 values"),  # the fixture's network is shared by the module's tests
])
def test_damaged_tensors_are_refused_naming_the_key(tiny_zoo, tmp_path, damage, expected):
    key = "blocks.0.multipathway_blocks.0.conv.weight"
    src = _tweaked(tiny_zoo, tmp_path, lambda s: s.__setitem__(key, damage(s[key])))
    with pytest.raises(CheckpointError, match=f"{re.escape(key)} holds {expected}"):
        _import(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_config_overrides_are_checked_before_anything_is_written(tiny_zoo, tmp_path):
    _, src = tiny_zoo
    with pytest.raises(ValueError, match="unknown ThermalSlowFastConfig fields: 'num_frame' .did you mean num_frames"):
        _import(src, tmp_path / "out", num_frame=16)
    with pytest.raises(CheckpointError, match="stem_width is 64 in the checkpoint, not 16"):
        _import(src, tmp_path / "out", stem_width=16)
    with pytest.raises(ValueError, match="std"):
        _import(src, tmp_path / "out", pixel_std=0)
    assert not (tmp_path / "out").exists()
    # the depth is read from the checkpoint by default, as on the command line
    out = cc.import_checkpoint(src, tmp_path / "out", format="pytorchvideo", num_labels=2, num_frames=FRAMES)
    assert load_model(out).config.model_depth == 18


def test_an_existing_output_folder_is_replaced_only_when_asked_and_whole(tiny_zoo, tmp_path, monkeypatch):
    _, src = tiny_zoo
    out = _import(src, tmp_path / "model", num_labels=2, labels=["a", "b"])
    (out / "metrics.json").write_text("{}")  # an earlier model's record: must not survive beside a new model
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(CheckpointError, match="is not empty .*--overwrite"):
        _import(src, out, num_labels=3, labels=["a", "b", "c"])

    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ThermalVideoProcessor, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left"):
        _import(src, out, num_labels=3, labels=["a", "b", "c"], overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier model, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left behind
    monkeypatch.undo()

    _import(src, out, num_labels=3, labels=["a", "b", "c"], overwrite=True)
    assert load_model(out).config.num_labels == 3 and not (out / "metrics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="holds no saved model"):
        _import(src, notes, num_labels=2, labels=["a", "b"], overwrite=True)
    inside = out / "source.pyth"
    inside.write_bytes(src.read_bytes())
    with pytest.raises(CheckpointError, match="is inside .* which --overwrite would replace"):
        _import(inside, out, num_labels=2, labels=["a", "b"], overwrite=True)
    assert (notes / "todo.txt").read_text() == "mine" and inside.is_file()


# ---- MMAction2 -------------------------------------------------------------------------------------------
def test_mmaction2_key_mapping():
    shapes = {
        "backbone.slow_path.conv1.conv.weight": "blocks.0.multipathway_blocks.0.conv.weight",
        "backbone.fast_path.conv1.bn.running_var": "blocks.0.multipathway_blocks.1.norm.running_var",
        "backbone.slow_path.conv1_lateral.conv.weight": "blocks.0.multipathway_fusion.conv_fast_to_slow.weight",
        "backbone.slow_path.layer3_lateral.conv.weight": "blocks.3.multipathway_fusion.conv_fast_to_slow.weight",
        "backbone.slow_path.layer1.0.conv1.conv.weight": "blocks.1.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight",
        "backbone.fast_path.layer4.2.conv3.bn.bias": "blocks.4.multipathway_blocks.1.res_blocks.2.branch2.norm_c.bias",
        "backbone.slow_path.layer2.0.downsample.conv.weight": "blocks.2.multipathway_blocks.0.res_blocks.0.branch1_conv.weight",
        "backbone.fast_path.layer2.0.downsample.bn.num_batches_tracked":
            "blocks.2.multipathway_blocks.1.res_blocks.0.branch1_norm.num_batches_tracked",
    }
    state = {k: torch.zeros(1) for k in shapes}
    state["data_preprocessor.mean"] = torch.zeros(3)
    state["backbone.slow_path.layer9.weird"] = torch.zeros(1)
    renamed, unexpected = cc.mmaction2_to_pytorchvideo(state)
    assert renamed == {v: state[k] for k, v in shapes.items()}
    assert unexpected == ["backbone.slow_path.layer9.weird"]


def test_mmaction2_head_columns_are_reordered():
    state = {
        "backbone.fast_path.layer4.0.conv3.conv.weight": torch.zeros(4, 1, 1, 1, 1),
        "cls_head.fc_cls.weight": torch.arange(10.0).repeat(2, 1),  # 4 fast columns, then 6 slow
        "cls_head.fc_cls.bias": torch.ones(2),
    }
    renamed, _ = cc.mmaction2_to_pytorchvideo(state)
    assert renamed["blocks.6.proj.weight"][0].tolist() == [4, 5, 6, 7, 8, 9, 0, 1, 2, 3]


def _requires_bare_fusion() -> None:
    from thermal_hf.models.thermal_slowfast import ThermalSlowFastConfig

    if "slowfast_fusion_norm_act" not in cc._config_class_fields(ThermalSlowFastConfig):
        pytest.skip("ThermalSlowFastConfig has no `slowfast_fusion_norm_act` field yet: MMAction2 checkpoints "
                    "(bare-convolution laterals) cannot be imported exactly")


_PATH_NAMES = ("slow_path", "fast_path")


def to_mmaction2_names(state: dict) -> dict:
    """pytorchvideo keys -> MMAction2 `ResNet3dSlowFast` / `SlowFastHead` keys (the inverse of the converter)."""
    out = {}
    for key, value in state.items():
        if m := re.match(r"blocks\.0\.multipathway_blocks\.(\d)\.(conv|norm)\.(\w+)$", key):
            out[f"backbone.{_PATH_NAMES[int(m[1])]}.conv1.{'conv' if m[2] == 'conv' else 'bn'}.{m[3]}"] = value
        elif m := re.match(r"blocks\.(\d)\.multipathway_blocks\.(\d)\.res_blocks\.(\d+)\.branch2\.(conv|norm)_([abc])\.(\w+)$", key):
            kind = "conv" if m[4] == "conv" else "bn"
            out[f"backbone.{_PATH_NAMES[int(m[2])]}.layer{m[1]}.{m[3]}.conv{'abc'.index(m[5]) + 1}.{kind}.{m[6]}"] = value
        elif m := re.match(r"blocks\.(\d)\.multipathway_blocks\.(\d)\.res_blocks\.(\d+)\.branch1_(conv|norm)\.(\w+)$", key):
            kind = "conv" if m[4] == "conv" else "bn"
            out[f"backbone.{_PATH_NAMES[int(m[2])]}.layer{m[1]}.{m[3]}.downsample.{kind}.{m[5]}"] = value
        elif m := re.match(r"blocks\.(\d)\.multipathway_fusion\.conv_fast_to_slow\.(\w+)$", key):
            name = "conv1_lateral" if m[1] == "0" else f"layer{m[1]}_lateral"
            out[f"backbone.slow_path.{name}.conv.{m[2]}"] = value
        elif key == "blocks.6.proj.weight":  # MMAction2's head reads (fast, slow) features
            out["cls_head.fc_cls.weight"] = torch.cat([value[:, 2048:], value[:, :2048]], dim=1)
        elif key == "blocks.6.proj.bias":
            out["cls_head.fc_cls.bias"] = value
        else:
            raise AssertionError(f"unmapped key {key}")
    return out


def test_fusion_norm_act_flag_builds_bare_laterals():
    """`slowfast_fusion_norm_act=False` (needed for MMAction2) removes exactly the laterals' BN and ReLU."""
    _requires_bare_fusion()
    from conftest import make_tiny_model

    default, bare = make_tiny_model(), make_tiny_model(slowfast_fusion_norm_act=False)
    fusion_norms = {k for k in default.state_dict() if ".multipathway_fusion.norm." in k}
    assert len(fusion_norms) == 4 * 5  # stem + stages 1-3, five tensors each
    assert set(bare.state_dict()) == set(default.state_dict()) - fusion_norms
    for block in bare.slowfast.blocks[:4]:
        assert block.multipathway_fusion.norm is None and block.multipathway_fusion.activation is None
    assert bare(pixel_values=grey_clip()).logits.shape == (1, 14)


def test_mmaction2_layout_round_trip(tmp_path):
    """A bare-fusion pytorchvideo net saved under MMAction2 names imports back to the same logits."""
    _requires_bare_fusion()
    from pytorchvideo.models.slowfast import FastToSlowFusionBuilder

    fusion = FastToSlowFusionBuilder(
        slowfast_channel_reduction_ratio=8, conv_fusion_channel_ratio=2, conv_kernel_size=(7, 1, 1),
        conv_stride=(4, 1, 1), norm=None, activation=None, max_stage_idx=3,
    ).create_module
    net = make_pytorchvideo_net(depth=18, fusion_builder=fusion)
    src = tmp_path / "mma.pth"
    state = {"data_preprocessor.mean": torch.zeros(3, 1, 1, 1), **to_mmaction2_names(net.state_dict())}
    torch.save({"meta": {}, "state_dict": state}, src)
    out = _import(src, tmp_path / "model", format="mmaction2", keep_head=True)
    model = load_model(out)
    assert model.config.slowfast_fusion_norm_act is False
    clip = grey_clip(3)
    with torch.no_grad():
        logits = model(pixel_values=clip).logits
    torch.testing.assert_close(logits, reference_logits(net, clip), rtol=1e-5, atol=1e-5)


def _parity_module():
    sys.path.insert(0, str(REPO / "compat"))
    try:
        import mmaction2_parity
    finally:
        sys.path.pop(0)
    return mmaction2_parity


@pytest.mark.slow
def test_mmaction2_parity_against_mmaction2_code(tmp_path):
    """MMAction2's own ResNet3dSlowFast R50 (random weights) vs our import of its checkpoint.

    Runs compat/mmaction2_parity.py: its MMAction2 half in the MMAction2 interpreter, its check here.
    """
    _requires_bare_fusion()
    parity = _parity_module()
    python = parity.mmaction_python_from_env()
    if python is None:
        pytest.skip("no interpreter with mmaction2: set THERMAL_MMACTION_PYTHON or build /tmp/mmenv "
                    "(compat/README.md)")
    results = parity.run(python, tmp_path, depth=50, seed=0, frames=16, height=64, width=96)
    report = parity._markdown(results)
    assert results["ok"], report
    assert results["slow_features"]["max_abs_diff"] <= 1e-5 * results["slow_features"]["max_abs_value"], report
    assert results["fusion_norm_act"] is False
    # The check is sensitive: keeping pytorchvideo's lateral BN (as identity) + ReLU is far off.
    assert results["control"]["logits with identity-BN + ReLU laterals"]["relative"] > 1e-2, report


def test_the_output_folder_itself_is_kept_a_link_the_current_folder_and_its_permissions(tiny_zoo, tmp_path,
                                                                                         monkeypatch):
    import os
    import stat

    _, src = tiny_zoo
    here = tmp_path / "here"
    here.mkdir()
    here.chmod(0o2775)
    monkeypatch.chdir(here)
    _import(src, Path("."), num_labels=2, labels=["a", "b"])  # `.` cannot be renamed: its contents are replaced
    assert load_model(here).config.num_labels == 2
    assert stat.S_IMODE(here.stat().st_mode) == 0o2775
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((here / "config.json").stat().st_mode) == 0o666 & ~umask  # not private to the importer
    assert sorted(p.name for p in here.iterdir() if p.name.startswith(".")) == []  # no work folder left
    link = tmp_path / "link"
    link.symlink_to(here, target_is_directory=True)
    _import(src, link, num_labels=3, labels=["a", "b", "c"], overwrite=True)
    assert link.is_symlink() and load_model(here).config.num_labels == 3
