"""Parity check of the MMAction2 checkpoint import against MMAction2's own SlowFast code.

Two interpreters are involved, because MMAction2 (mmengine, mmcv) must never be a dependency of thermal-hf:

1. ``make`` runs in a separate environment that has ``mmaction2`` installed (see compat/README.md). It builds
   MMAction2's real ``ResNet3dSlowFast`` backbone + ``SlowFastHead`` with the Kinetics SlowFast R50 8x8 config
   and random weights (BatchNorm affine parameters and running statistics randomised too, so that no layer is
   an identity by construction), saves them as an MMAction2 checkpoint ``{"state_dict": {"backbone.*",
   "cls_head.fc_cls.*"}}``, and runs them on a fixed clip, writing the input, the slow and fast features and
   the logits to ``reference.npz``.
2. ``check`` runs in the project's environment. It imports the checkpoint with
   ``thermal_hf.models.thermal_slowfast.convert_checkpoint.import_checkpoint`` (keeping the Kinetics head so
   logits can be compared), loads the saved model with ``from_pretrained`` and compares:
   the backbone features (the model's pytorchvideo net fed the same slow/fast pathways MMAction2 derives from
   its input) and the logits (both through the network alone and through the full ``forward`` on a 64-frame
   single-channel clip, which exercises the model's own frame sampling and channel repeat).

``run`` (project environment) does both: it calls ``make`` with the MMAction2 interpreter given by
``--mmaction-python`` (default ``$THERMAL_MMACTION_PYTHON`` or ``/tmp/mmenv/bin/python``), then ``check``.
Exit status 0 when every difference is within float32 precision (relative max-abs difference <= 1e-5).

    .venv/bin/python compat/mmaction2_parity.py run [--depth 50] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

DEFAULT_MMACTION_PYTHON = "/tmp/mmenv/bin/python"
#: The Kinetics-400 SlowFast R50 8x8 backbone config (configs/recognition/slowfast/
#: slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.py on top of its 4x16 base).
RESAMPLE_RATE, SPEED_RATIO, CHANNEL_RATIO = 4, 4, 8
REL_TOLERANCE = 1e-5


# ---- step 1: MMAction2 side (run with the mmaction2 interpreter) -----------------------------------------
def _import_mmaction():
    # The PyPI wheel of mmaction2 1.2.0 lacks mmaction/models/localizers/drn, which mmaction.models imports
    # eagerly; an empty stand-in package lets the backbones and heads import.
    stub = types.ModuleType("mmaction.models.localizers")
    stub.__path__ = []
    sys.modules.setdefault("mmaction.models.localizers", stub)
    from mmaction.models.backbones.resnet3d_slowfast import ResNet3dSlowFast
    from mmaction.models.heads.slowfast_head import SlowFastHead

    return ResNet3dSlowFast, SlowFastHead


def make_reference(out_dir: Path, *, depth: int, seed: int, frames: int, height: int, width: int) -> None:
    import torch

    ResNet3dSlowFast, SlowFastHead = _import_mmaction()
    torch.manual_seed(seed)
    fusion_kernel = 7 if depth == 50 else 5  # MMAction2's R50 8x8 config sets 7; the pathway default is 5
    backbone = ResNet3dSlowFast(
        None,
        resample_rate=RESAMPLE_RATE,
        speed_ratio=SPEED_RATIO,
        channel_ratio=CHANNEL_RATIO,
        slow_pathway=dict(type="resnet3d", depth=depth, pretrained=None, lateral=True, fusion_kernel=fusion_kernel,
                          conv1_kernel=(1, 7, 7), dilations=(1, 1, 1, 1), conv1_stride_t=1, pool1_stride_t=1,
                          inflate=(0, 0, 1, 1)),
        fast_pathway=dict(type="resnet3d", depth=depth, pretrained=None, lateral=False, base_channels=8,
                          conv1_kernel=(5, 7, 7), conv1_stride_t=1, pool1_stride_t=1),
    )
    head = SlowFastHead(num_classes=400, in_channels=2048 + 256, dropout_ratio=0.5)
    # Random weights, not MMAction2's init: its zero_init_residual would zero the last BN of every block and
    # hide any mistake inside the residual branches. Convolutions keep PyTorch's random default init.
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in list(backbone.modules()) + list(head.modules()):
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.num_batches_tracked.fill_(1000)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 0.01, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
    backbone.eval()
    head.eval()

    # One grey (single-channel) clip, repeated to RGB: what the thermal model feeds its stem.
    grey = torch.rand(1, 1, frames, height, width, generator=generator) * 2 - 1
    clip = grey.repeat(1, 3, 1, 1, 1)
    with torch.no_grad():
        slow, fast = backbone(clip)
        logits = head((slow, fast))

    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"cls_head.{k}": v for k, v in head.state_dict().items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": {"note": "random weights, thermal-hf parity check"}, "state_dict": state},
               out_dir / "mmaction2_slowfast.pth")
    np.savez(out_dir / "reference.npz", clip=clip.numpy(), slow=slow.numpy(), fast=fast.numpy(),
             logits=logits.numpy())
    import mmaction
    import mmengine

    info = {
        "mmaction2": mmaction.__version__, "mmengine": mmengine.__version__, "torch": torch.__version__,
        "depth": depth, "state_dict_entries": len(state),
        "backbone_parameters": sum(p.numel() for p in backbone.parameters()),
        "input": list(clip.shape), "slow": list(slow.shape), "fast": list(fast.shape),
    }
    (out_dir / "reference.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


# ---- step 2: thermal-hf side (run with the project's interpreter) ----------------------------------------
def _diff(ours, reference) -> dict:
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if ours.shape != reference.shape:
        return {"shape": f"{ours.shape} vs {reference.shape}", "max_abs_diff": float("inf"), "relative": float("inf")}
    diff = float(np.abs(ours - reference).max())
    scale = float(np.abs(reference).max())
    return {"shape": list(reference.shape), "max_abs_diff": diff, "max_abs_value": scale,
            "relative": diff / scale if scale else diff}


def check(work_dir: Path) -> dict:
    import torch

    from thermal_hf.models.thermal_slowfast import ThermalSlowFastForVideoClassification
    from thermal_hf.models.thermal_slowfast.convert_checkpoint import import_checkpoint

    reference = np.load(work_dir / "reference.npz")
    clip = torch.from_numpy(reference["clip"])  # (1, 3, T, H, W), MMAction2's input
    _, _, frames, height, width = clip.shape
    info = json.loads((work_dir / "reference.json").read_text())
    # Our model takes every fast_temporal_stride-th frame of a `num_frames` clip for the fast pathway and every
    # slow_temporal_stride-th for the slow one; with strides 2 and 2 * RESAMPLE_RATE on a 2T-frame clip whose
    # even frames are MMAction2's T, both pathways see exactly what MMAction2's interpolation picks.
    model_dir = import_checkpoint(
        work_dir / "mmaction2_slowfast.pth", work_dir / "imported", format="mmaction2", num_labels=400,
        labels=[f"k{i}" for i in range(400)], model_depth=info["depth"], keep_head=True,
        num_frames=2 * frames, slow_temporal_stride=2 * RESAMPLE_RATE,
        fast_temporal_stride=2 * (RESAMPLE_RATE // SPEED_RATIO), image_size=(height, width), dropout=0.5,
    )
    model = ThermalSlowFastForVideoClassification.from_pretrained(model_dir).eval()
    net = model.slowfast
    with torch.no_grad():
        # (a) the pytorchvideo net, pathways packed exactly as MMAction2 does (nearest interpolation).
        slow_in = torch.nn.functional.interpolate(clip, mode="nearest", scale_factor=(1.0 / RESAMPLE_RATE, 1, 1))
        fast_in = torch.nn.functional.interpolate(
            clip, mode="nearest", scale_factor=(1.0 / (RESAMPLE_RATE // SPEED_RATIO), 1, 1)
        )
        x = [slow_in, fast_in]
        for block in net.blocks[:-2]:
            x = block(x)
        slow, fast = x
        logits_net = net.blocks[-1](net.blocks[-2]([slow, fast]))
        # (b) the full model forward on a 64-frame-style single-channel clip (B, T, H, W).
        grey = clip[:, 0]  # (1, T, H, W)
        pixel_values = torch.zeros(1, 2 * frames, height, width)
        pixel_values[:, ::2] = grey
        pixel_values[:, 1::2] = grey + 100.0  # frames no pathway may use: poison them
        logits_forward = model(pixel_values=pixel_values).logits
    config = model.config
    control = _identity_bn_relu_control(model, slow_in, fast_in)
    results = {
        "reference": info,
        "fusion_norm_act": getattr(config, "slowfast_fusion_norm_act", None),
        "slow_features": _diff(slow, reference["slow"]),
        "fast_features": _diff(fast, reference["fast"]),
        "logits (net, explicit pathways)": _diff(logits_net, reference["logits"]),
        "logits (model.forward, 2T-frame grey clip)": _diff(logits_forward, reference["logits"]),
    }
    results["ok"] = all(
        v["relative"] <= REL_TOLERANCE for k, v in results.items() if isinstance(v, dict) and "relative" in v
    )
    # Not part of "ok": shows the check would catch the tempting shortcut of keeping pytorchvideo's lateral
    # conv + BN + ReLU with an identity BN (the ReLU still clips the negative lateral features).
    results["control"] = {"logits with identity-BN + ReLU laterals": _diff(control, reference["logits"])}
    return results


def _identity_bn_relu_control(model, slow_in, fast_in):
    import torch

    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastConfig,
        ThermalSlowFastForVideoClassification,
    )
    from thermal_hf.models.thermal_slowfast.convert_checkpoint import load_backbone_state

    kwargs = model.config.to_dict()
    kwargs["slowfast_fusion_norm_act"] = True
    for key in ("model_type", "transformers_version", "architectures", "base_checkpoint"):
        kwargs.pop(key, None)
    shortcut = ThermalSlowFastForVideoClassification(ThermalSlowFastConfig(**kwargs)).eval()
    state = {k: v for k, v in model.slowfast.state_dict().items()}
    for name, module in shortcut.slowfast.named_modules():
        if name.endswith("multipathway_fusion.norm"):
            n = module.num_features
            state.update({f"{name}.weight": torch.ones(n), f"{name}.bias": torch.zeros(n),
                          f"{name}.running_mean": torch.zeros(n),
                          f"{name}.running_var": torch.full((n,), 1.0 - module.eps),
                          f"{name}.num_batches_tracked": torch.tensor(0)})
    load_backbone_state(shortcut, state, keep_head=True, origin="control")
    with torch.no_grad():
        return shortcut.slowfast([slow_in, fast_in])


def _markdown(results: dict) -> str:
    ref = results["reference"]
    lines = [
        f"MMAction2 {ref['mmaction2']} (mmengine {ref['mmengine']}, torch {ref['torch']}) ResNet3dSlowFast "
        f"R{ref['depth']}, {ref['state_dict_entries']} state-dict entries, input {ref['input']}",
        "",
        "| output | shape | max abs diff | max abs value | relative |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, value in results.items():
        if isinstance(value, dict) and "relative" in value:
            lines.append(
                f"| {name} | {value['shape']} | {value['max_abs_diff']:.3g} | {value.get('max_abs_value', 0):.3g} "
                f"| {value['relative']:.3g} |"
            )
    for name, value in results.get("control", {}).items():
        lines.append(
            f"| control (must differ): {name} | {value['shape']} | {value['max_abs_diff']:.3g} "
            f"| {value.get('max_abs_value', 0):.3g} | {value['relative']:.3g} |"
        )
    lines.append("")
    lines.append(f"parity {'OK' if results['ok'] else 'FAILED'} (relative tolerance {REL_TOLERANCE:g})")
    return "\n".join(lines)


def run(mmaction_python: str, work_dir: Path, *, depth: int, seed: int, frames: int, height: int, width: int) -> dict:
    command = [mmaction_python, str(Path(__file__).resolve()), "make", str(work_dir), "--depth", str(depth),
               "--seed", str(seed), "--frames", str(frames), "--height", str(height), "--width", str(width)]
    # The MMAction2 interpreter must not see the project's packages (nor the project venv's torch).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"MMAction2 side failed ({' '.join(command)}):\n{done.stderr[-4000:]}")
    return check(work_dir)


def mmaction_python_from_env() -> str | None:
    """The interpreter with MMAction2: ``$THERMAL_MMACTION_PYTHON``, else ``/tmp/mmenv/bin/python``, else None."""
    candidate = os.environ.get("THERMAL_MMACTION_PYTHON") or DEFAULT_MMACTION_PYTHON
    return candidate if Path(candidate).is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("make", "check", "run"):
        p = sub.add_parser(name)
        if name == "run":
            p.add_argument("--workdir", type=Path, default=None, help="keep the files here (default: a temp dir)")
            p.add_argument("--mmaction-python", default=None, help="interpreter with mmaction2 installed")
            p.add_argument("--json", action="store_true", help="print the results as JSON too")
        else:
            p.add_argument("workdir", type=Path)
        if name != "check":
            p.add_argument("--depth", type=int, default=50, choices=(50, 101))
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--frames", type=int, default=16, help="MMAction2 input frames (fast pathway)")
            p.add_argument("--height", type=int, default=64)
            p.add_argument("--width", type=int, default=96)
    args = parser.parse_args(argv)
    if args.command == "make":
        make_reference(args.workdir, depth=args.depth, seed=args.seed, frames=args.frames, height=args.height,
                       width=args.width)
        return 0
    if args.command == "check":
        results = check(args.workdir)
    else:
        python = args.mmaction_python or mmaction_python_from_env()
        if python is None:
            print("error: no interpreter with mmaction2 (set THERMAL_MMACTION_PYTHON or build /tmp/mmenv, see "
                  "compat/README.md)", file=sys.stderr)
            return 2
        sizes = dict(depth=args.depth, seed=args.seed, frames=args.frames, height=args.height, width=args.width)
        if args.workdir is None:
            with tempfile.TemporaryDirectory(prefix="mmaction2_parity_") as tmp:
                results = run(python, Path(tmp), **sizes)
        else:
            results = run(python, args.workdir, **sizes)
        if args.json:
            print(json.dumps(results, indent=2))
    print(_markdown(results))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
