"""Import a Kinetics SlowFast checkpoint (pytorchvideo zoo or MMAction2) as a thermal-hf model.

    thermal-hf import-checkpoint --format pytorchvideo|mmaction2 CHECKPOINT OUTPUT_DIR --num_labels 14 [--labels ...]

The result is a normal saved model (``model.safetensors`` + ``config.json``) and its
``video_preprocessor_config.json``, with the Kinetics backbone and a fresh classification head for the
users' classes, loadable with ``AutoModelForVideoClassification.from_pretrained``.

Formats (either may also be a bare state dict, as ``torch.save(net.state_dict(), f)`` writes; a file whose keys
are the other format's is refused with the ``--format`` to pass):

* ``pytorchvideo``: the zoo's ``SLOWFAST_8x8_R50.pyth`` / ``SLOWFAST_8x8_R101.pyth``, ``{"model_state": ...}``
  with pytorchvideo's own key names (our model holds the same network as ``self.slowfast``). The zoo's R101
  uses a fusion kernel of 5 (R50: 7); the kernel is read from the checkpoint.
* ``mmaction2``: ``{"state_dict": ...}`` with ``backbone.slow_path.*`` / ``backbone.fast_path.*`` /
  ``cls_head.fc_cls.*`` keys (``ResNet3dSlowFast`` + ``SlowFastHead``). Architectural differences with
  pytorchvideo's ``create_slowfast``, each checked against MMAction2's own code by ``compat/mmaction2_parity.py``:

  - MMAction2's lateral (fast-to-slow) connections are a bare convolution (``lateral_norm=False``, the default
    of every Kinetics config); pytorchvideo's fusion is conv + BatchNorm + ReLU. The imported model is built
    with ``slowfast_fusion_norm_act=False`` (fusion = convolution only), which is exact in training too, unlike
    an identity BatchNorm that would normalise with batch statistics as soon as the model trains.
  - ``SlowFastHead`` concatenates the pooled features as (fast, slow); pytorchvideo as (slow, fast). Only
    matters when the Kinetics head is kept (``keep_head=True``): its input columns are swapped.
  - Same elsewhere (no conversion needed): lateral features are concatenated after the slow ones, lateral
    kernel ``(k, 1, 1)`` with temporal stride alpha and padding ``k // 2``, stems ``(1, 7, 7)`` / ``(5, 7, 7)``
    with a ``(1, 3, 3)`` max-pool of stride ``(1, 2, 2)``, ``inflate=(0, 0, 1, 1)`` slow / ``(1, 1, 1, 1)``
    fast = pytorchvideo's ``conv_a`` kernels, ``style='pytorch'`` (spatial stride on the 3x3 convolution, as
    ``conv_b``), 1x1x1 strided downsample + BN on the shortcut, BatchNorm eps 1e-5.
  - MMAction2 picks the slow frames from one input itself (nearest interpolation: frames 0, tau, 2 tau, ...);
    our model's ``pack_pathways`` takes the same frames (every ``slow_temporal_stride``-th).

Every file is read with ``torch.load(weights_only=True)``. Every backbone tensor of the checkpoint must find a
place and every backbone parameter/buffer of the model must be filled, with the same shape, else
[`~thermal_hf.errors.CheckpointError`] lists the missing and unexpected keys and the shape mismatches.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import numbers
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError

from thermal_hf.cli_parser import CommandParser
from thermal_hf.errors import CheckpointError

FORMATS = ("pytorchvideo", "mmaction2")
#: pytorchvideo `create_slowfast` stage depths -> model depth (pytorchvideo's light "18" is 1-1-1-1).
_STAGE_DEPTHS = {(1, 1, 1, 1): 18, (3, 4, 6, 3): 50, (3, 4, 23, 3): 101}
#: Input normalisation the Kinetics models were trained with, on 0..1 pixels, averaged over RGB (the thermal
#: clip is one channel repeated): pytorchvideo 0.45 / 0.225; MMAction2's ImageNet values average to
#: 0.4496 / 0.2260. The processor maps temperatures to 0..1 first, then applies these.
PRETRAINED_MEAN, PRETRAINED_STD = 0.45, 0.225
_MAX_LISTED = 20

# MMAction2 key patterns -> pytorchvideo keys (without our `slowfast.` prefix).
_PATHWAY = {"slow": 0, "fast": 1}
_NORM_OR_CONV = {"conv": "conv", "bn": "norm"}
_MMA_RULES: list[tuple[re.Pattern[str], object]] = [
    (
        re.compile(r"^backbone\.(slow|fast)_path\.conv1\.(conv|bn)\.(\w+)$"),
        lambda m: f"blocks.0.multipathway_blocks.{_PATHWAY[m[1]]}.{_NORM_OR_CONV[m[2]]}.{m[3]}",
    ),
    (
        re.compile(r"^backbone\.(slow|fast)_path\.layer(\d)\.(\d+)\.conv([123])\.(conv|bn)\.(\w+)$"),
        lambda m: (
            f"blocks.{m[2]}.multipathway_blocks.{_PATHWAY[m[1]]}.res_blocks.{m[3]}.branch2."
            f"{_NORM_OR_CONV[m[5]]}_{'abc'[int(m[4]) - 1]}.{m[6]}"
        ),
    ),
    (
        re.compile(r"^backbone\.(slow|fast)_path\.layer(\d)\.(\d+)\.downsample\.(conv|bn)\.(\w+)$"),
        lambda m: (
            f"blocks.{m[2]}.multipathway_blocks.{_PATHWAY[m[1]]}.res_blocks.{m[3]}."
            f"branch1_{_NORM_OR_CONV[m[4]]}.{m[5]}"
        ),
    ),
    (
        re.compile(r"^backbone\.slow_path\.conv1_lateral\.(conv|bn)\.(\w+)$"),
        lambda m: f"blocks.0.multipathway_fusion.{'conv_fast_to_slow' if m[1] == 'conv' else 'norm'}.{m[2]}",
    ),
    (
        re.compile(r"^backbone\.slow_path\.layer(\d)_lateral\.(conv|bn)\.(\w+)$"),
        lambda m: f"blocks.{m[1]}.multipathway_fusion.{'conv_fast_to_slow' if m[2] == 'conv' else 'norm'}.{m[3]}",
    ),
]
#: The MMAction2 classifier (replaced by a fresh head) and preprocessor buffers (not weights).
_MMA_HEAD = re.compile(r"^cls_head\.fc_cls\.(weight|bias)$")
_MMA_IGNORED = re.compile(r"^(data_preprocessor\.|cls_head\.)")


# ---- reading ---------------------------------------------------------------------------------------------
def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_source_state_dict(path: str | Path, format: str) -> dict[str, torch.Tensor]:
    """The raw state dict inside a zoo file (``model_state`` or ``state_dict``), loaded safely on CPU."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        # Training scripts often leave numpy scalars/arrays in a checkpoint's metadata (epoch, seed, ...): allow
        # those plain data types; any other object (code, custom classes) is still refused by weights_only.
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle with code objects, truncated file, not a torch file at all
        why = "an empty file" if path.stat().st_size == 0 else f"{type(err).__name__}: {err}"
        raise CheckpointError(
            f"{path}: cannot be read with torch.load(weights_only=True) (only tensors and plain data are accepted; "
            f"a truncated download or an object of a custom class gives this): {why}"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: a checkpoint is a dict of tensors (a state dict) or holds one under {list(_WRAPPERS)}; found a "
            f"{type(checkpoint).__name__}"
        )
    state, wrapper = _unwrap(checkpoint)
    if state is None:
        present = next((k for k in _WRAPPERS if k in checkpoint), None)
        if present is not None:
            raise CheckpointError(f"{path}: {present!r} {_not_a_state_dict(checkpoint[present])}")
        found = sorted(map(str, checkpoint))[:_MAX_LISTED]
        raise CheckpointError(
            f"{path}: no state dict found: a checkpoint is a dict of tensors under string keys, or holds one under "
            f"one of {list(_WRAPPERS)}; found the entries {found}"
        )
    state = _strip_prefixes(state)
    looks_like = _format_of_keys(state)
    if looks_like not in (None, format):
        raise CheckpointError(
            f"{path}: its keys{f' (under {wrapper!r})' if wrapper else ''} look like a {looks_like} checkpoint "
            f"({sorted(state)[0]!r}, ...), not {format}: pass --format {looks_like}"
        )
    if looks_like is None and any(k.startswith("slowfast.blocks.") for k in state):
        raise CheckpointError(
            f"{path}: already a thermal-hf model's weights (keys 'slowfast.blocks...'): load its folder with "
            "from_pretrained, or give it to a recipe as model_name_or_path, instead of importing it"
        )
    return dict(state)


#: Where training scripts keep the state dict inside a checkpoint: pytorchvideo's zoo, MMAction2 / Lightning,
#: and plain training loops.
_WRAPPERS = ("model_state", "state_dict", "model", "module", "net")
#: Prefixes that wrappers put before every key: DistributedDataParallel's `module.`, a Lightning module's
#: attribute (`model.`), a pytorchvideo net kept as a `backbone.` (only before pytorchvideo's own `blocks.` keys:
#: MMAction2's keys start with `backbone.` too).
_PREFIXES = ("module.", "model.", "net.")


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _not_a_state_dict(value) -> str:
    if not isinstance(value, dict):
        return f"must be a dict of tensors, found a {type(value).__name__}"
    bad = [str(k) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    return f"has entries that are not tensors under string keys: {bad[:_MAX_LISTED]}" if bad else "is empty"


def _unwrap(checkpoint: dict) -> tuple[dict | None, str | None]:
    """``(state dict, the entry it was under or None)``: a bare state dict, or one under a known wrapper key
    (nested at most twice, e.g. ``{"state_dict": {"model": ...}}``)."""
    if _is_state_dict(checkpoint):
        return checkpoint, None
    for key in _WRAPPERS:
        inner = checkpoint.get(key)
        if _is_state_dict(inner):
            return inner, key
        if isinstance(inner, dict):
            nested, below = _unwrap(inner)
            if nested is not None:
                return nested, f"{key}.{below}" if below else key
    return None, None


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the prefixes every key shares (``module.``, ``model.``, ``net.``; ``backbone.`` before ``blocks.``)."""
    while True:
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None and all(k.startswith("backbone.blocks.") for k in state):
            prefix = "backbone."
        if prefix is None:
            return state
        state = {k[len(prefix):]: v for k, v in state.items()}


def _format_of_keys(state: dict[str, torch.Tensor]) -> str | None:
    """Which zoo's key layout `state` has: pytorchvideo's `blocks.N.` or MMAction2's `backbone.slow_path.` /
    `backbone.fast_path.` (with `cls_head.`, `data_preprocessor.`)."""
    keys = list(state)
    if keys and all(k.startswith("blocks.") for k in keys):
        return "pytorchvideo"
    if (keys and all(k.startswith(("backbone.", "cls_head.", "data_preprocessor.")) for k in keys)
            and any(k.startswith(("backbone.slow_path.", "backbone.fast_path.")) for k in keys)):
        return "mmaction2"
    return None


def _numpy_safe_globals() -> list:
    """numpy scalar/array/dtype reconstructors, under their numpy 1 and numpy 2 module names."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allowed: list = [np.ndarray, np.dtype]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")] if hasattr(np, "dtypes") else []
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray.scalar, f"{module}.scalar"), (multiarray._reconstruct, f"{module}._reconstruct")]
    return allowed


def mmaction2_to_pytorchvideo(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename an MMAction2 ``ResNet3dSlowFast`` + ``SlowFastHead`` state dict to pytorchvideo keys.

    Returns ``(renamed, unexpected)``. The Kinetics classifier ``cls_head.fc_cls`` becomes the head projection
    ``blocks.6.proj`` with its input columns reordered from MMAction2's (fast, slow) to pytorchvideo's (slow,
    fast); keys under ``data_preprocessor.`` are dropped. Keys no rule knows are returned as unexpected.
    """
    renamed: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        for pattern, target in _MMA_RULES:
            match = pattern.match(key)
            if match:
                renamed[target(match)] = value
                break
        else:
            head = _MMA_HEAD.match(key)
            if head:
                renamed[f"blocks.6.proj.{head[1]}"] = value
            elif not _MMA_IGNORED.match(key):
                unexpected.append(key)
    weight = renamed.get("blocks.6.proj.weight")
    if weight is not None:
        fast_dims = _fast_output_channels(renamed)
        if fast_dims is None or weight.ndim != 2 or weight.shape[1] <= fast_dims:
            raise CheckpointError(
                f"cls_head.fc_cls.weight has shape {tuple(weight.shape)}; cannot split it into fast and slow "
                "features (the fast pathway's last stage was not found)"
            )
        renamed["blocks.6.proj.weight"] = torch.cat([weight[:, fast_dims:], weight[:, :fast_dims]], dim=1)
    return renamed, unexpected


def _fast_output_channels(state: dict[str, torch.Tensor]) -> int | None:
    """Output channels of the fast pathway's last residual stage (the fast part of the head's input)."""
    last = [k for k in state if re.match(r"^blocks\.4\.multipathway_blocks\.1\.res_blocks\.\d+\.branch2\.conv_c\.weight$", k)]
    return int(state[last[0]].shape[0]) if last else None


# ---- architecture inference ------------------------------------------------------------------------------
def infer_architecture(state: dict[str, torch.Tensor]) -> dict:
    """Config values a pytorchvideo-keyed SlowFast state dict implies: depth, fusion kernel, fusion norm, ...

    Raises `CheckpointError` if the tensors that define the architecture are absent.
    """
    try:
        stem_slow = state["blocks.0.multipathway_blocks.0.conv.weight"]
        stem_fast = state["blocks.0.multipathway_blocks.1.conv.weight"]
        fusion = state["blocks.0.multipathway_fusion.conv_fast_to_slow.weight"]
    except KeyError as err:
        raise CheckpointError(
            f"not a SlowFast checkpoint: {err.args[0]!r} is missing (first keys: {sorted(state)[:8]})"
        ) from err
    depths = []
    for stage in range(1, 5):
        blocks = {
            int(m[1])
            for k in state
            if (m := re.match(rf"^blocks\.{stage}\.multipathway_blocks\.0\.res_blocks\.(\d+)\.", k))
        }
        depths.append(len(blocks))
    depth = _STAGE_DEPTHS.get(tuple(depths))
    if depth is None:
        raise CheckpointError(f"residual stages with {tuple(depths)} blocks match no SlowFast depth ({_STAGE_DEPTHS})")
    head = state.get("blocks.6.proj.weight")
    return {
        "model_depth": depth,
        "stem_width": int(stem_slow.shape[0]),
        "stem_channels": int(stem_slow.shape[1]),
        "slowfast_channel_ratio": int(stem_slow.shape[0]) // int(stem_fast.shape[0]),
        "slowfast_fusion_channel_ratio": int(fusion.shape[0]) // int(fusion.shape[1]),
        "slowfast_fusion_kernel_size": int(fusion.shape[2]),
        "slowfast_fusion_norm_act": "blocks.0.multipathway_fusion.norm.weight" in state,
        "source_num_classes": int(head.shape[0]) if head is not None else None,
    }


# ---- loading into our model ------------------------------------------------------------------------------
def load_backbone_state(
    model: torch.nn.Module, source: dict[str, torch.Tensor], *, keep_head: bool = False, origin: str = "checkpoint"
) -> dict:
    """Copy a pytorchvideo-keyed SlowFast state dict into ``model.slowfast`` strictly (head excepted).

    Every backbone entry of `source` must exist in the model with the same shape and every backbone entry of
    the model must be in `source`; only BatchNorm ``num_batches_tracked`` counters may be absent (they are
    not weights: set to 0). The source head (``blocks.<last>.*``) is dropped unless `keep_head`, in which
    case it must fit the model's head exactly. Returns a summary for ``conversion.json``.
    """
    net = model.slowfast
    head_prefix = f"blocks.{len(net.blocks) - 1}."
    target = net.state_dict()
    src_backbone = {k: v for k, v in source.items() if not k.startswith(head_prefix)}
    src_head = {k: v for k, v in source.items() if k.startswith(head_prefix)}
    tgt_backbone = {k for k in target if not k.startswith(head_prefix)}

    missing = sorted(k for k in tgt_backbone - src_backbone.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(src_backbone.keys() - tgt_backbone)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in src_backbone.items()
        if k in target and v.shape != target[k].shape
    )
    if keep_head:
        tgt_head = {k for k in target if k.startswith(head_prefix)}
        missing += sorted(tgt_head - src_head.keys())
        unexpected += sorted(src_head.keys() - tgt_head)
        mismatched += sorted(
            f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)} (keep_head needs num_labels equal "
            "to the checkpoint's classes)"
            for k, v in src_head.items()
            if k in target and v.shape != target[k].shape
        )
    if missing or unexpected or mismatched:
        raise CheckpointError(_mismatch_message(origin, missing, unexpected, mismatched))
    loaded = {**src_backbone, **(src_head if keep_head else {})}
    for key, value in sorted(loaded.items()):
        if target[key].is_floating_point() and not value.is_floating_point():
            raise CheckpointError(f"{origin}: {key} holds {value.dtype} values where the model has "
                                  f"{target[key].dtype} weights: not a trained network's tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{origin}: {key} holds values that are not finite (NaN or infinity): the "
                                  "checkpoint is damaged or its training diverged")

    new_state = dict(target)
    filled_counters = 0
    for key in tgt_backbone:
        if key in src_backbone:
            new_state[key] = src_backbone[key].to(target[key].dtype)
        else:  # a num_batches_tracked counter
            new_state[key] = torch.zeros_like(target[key])
            filled_counters += 1
    if keep_head:
        new_state.update({k: v.to(target[k].dtype) for k, v in src_head.items()})
    net.load_state_dict(new_state, strict=True)
    return {
        "backbone_tensors_loaded": len(src_backbone),
        "num_batches_tracked_filled": filled_counters,
        "source_head_tensors": sorted(src_head),
        "head": "kept from the checkpoint" if keep_head else "fresh (the checkpoint's head was dropped)",
    }


def _mismatch_message(origin: str, missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    lines = [f"{origin} does not match the model architecture:"]
    for title, keys in (("missing in the checkpoint", missing), ("unexpected in the checkpoint", unexpected),
                        ("shape mismatches", mismatched)):
        if keys:
            more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
            lines.append(f"  {title} ({len(keys)}){more}:")
            lines += [f"    {k}" for k in keys[:_MAX_LISTED]]
    lines.append("Check --format and --model_depth; the config overrides must not change the backbone.")
    return "\n".join(lines)


def _label_names(num_labels: int, labels: Sequence[str] | None) -> list[str]:
    if isinstance(num_labels, bool) or not isinstance(num_labels, numbers.Integral) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer (the classes of the new head), got {num_labels!r}")
    if labels is not None:
        labels = [str(name) for name in labels]
        if len(labels) != num_labels:
            raise ValueError(f"{len(labels)} labels given for num_labels={num_labels}: {labels}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"label names must be unique: {labels}")
        return labels
    from thermal_hf.data.categories import DEFAULT_CATEGORY_NAMES

    if num_labels == len(DEFAULT_CATEGORY_NAMES):
        return list(DEFAULT_CATEGORY_NAMES)
    return [f"LABEL_{i}" for i in range(num_labels)]


def _config_class_fields(config_class) -> set[str]:
    import dataclasses

    try:
        return {f.name for f in dataclasses.fields(config_class)}
    except TypeError:
        return set(vars(config_class()))


def import_checkpoint(
    path: str | Path,
    output_dir: str | Path,
    *,
    format: str,
    num_labels: int,
    labels: Sequence[str] | None = None,
    model_depth: int | None = None,
    keep_head: bool = False,
    pixel_mean: float | None = PRETRAINED_MEAN,
    pixel_std: float | None = PRETRAINED_STD,
    seed: int = 0,
    overwrite: bool = False,
    **config_overrides,
) -> Path:
    """Convert a Kinetics SlowFast checkpoint into a saved thermal-hf model + processor in `output_dir`.

    Args:
        path: the ``.pyth`` (pytorchvideo) or ``.pth`` (MMAction2) file.
        output_dir: folder for ``config.json``, ``model.safetensors``, ``video_preprocessor_config.json`` and
            ``conversion.json`` (source file, its SHA-256, what was loaded). A new or empty folder, or with
            `overwrite` one holding a saved model.
        format: ``"pytorchvideo"`` or ``"mmaction2"``.
        num_labels: classes of the new head.
        labels: class names in id order (default: the users' 14 categories when `num_labels` is 14, else
            ``LABEL_i``).
        model_depth: expected backbone depth (18, 50 or 101); ``None`` (default) takes it from the checkpoint.
            A checkpoint of another depth is refused.
        keep_head: keep the Kinetics classifier instead of a fresh head (`num_labels` must then equal the
            checkpoint's classes, e.g. 400); for checking a conversion, not for fine-tuning.
        pixel_mean, pixel_std: the processor's normalisation after temperatures are scaled to 0..1 (the
            Kinetics models were trained on ~N(0.45, 0.225) pixels); ``None`` leaves the 0..1 range.
        seed: seed of the fresh head's initialisation.
        overwrite: replace the model an existing `output_dir` holds (the whole folder is replaced once the new
            model is written; until then it stays as it was).
        **config_overrides: other `ThermalSlowFastConfig` fields (``num_frames``, ``image_size``,
            ``dropout``, ...). The fields that define the backbone (depth, widths, fusion) are read from the
            checkpoint; an override that contradicts it is refused.

    Returns:
        `output_dir` as a `Path`.

    Raises:
        CheckpointError: unreadable file, wrong format, tensors that do not fit the architecture or are not
            finite, or an output folder that would lose something.
        ValueError: an unknown config field or a bad value.
    """
    from thermal_hf.models.thermal_slowfast import (
        ThermalSlowFastConfig,
        ThermalSlowFastForVideoClassification,
        ThermalVideoProcessor,
    )

    path, output_dir = Path(path), Path(output_dir)
    _check_output_dir(path, output_dir, overwrite)
    names = _label_names(num_labels, labels)
    num_labels = int(num_labels)
    fields = _config_class_fields(ThermalSlowFastConfig)
    unknown = sorted(set(config_overrides) - fields)
    if unknown:
        hints = {k: difflib.get_close_matches(k, sorted(fields), n=2) for k in unknown}
        raise ValueError("unknown ThermalSlowFastConfig fields: " + "; ".join(
            f"{k!r}" + (f" (did you mean {', '.join(v)}?)" if v else "") for k, v in hints.items()))
    # Checked before anything is written: a bad normalisation must not leave a model without its processor.
    processor_kwargs = {"num_frames": config_overrides.get("num_frames", ThermalSlowFastConfig().num_frames),
                        "mean": pixel_mean, "std": pixel_std}
    ThermalVideoProcessor(**processor_kwargs)
    raw = load_source_state_dict(path, format)
    if format == "mmaction2":
        source, unexpected = mmaction2_to_pytorchvideo(raw)
        if unexpected:
            raise CheckpointError(_mismatch_message(f"{path} (mmaction2)", [], unexpected, []))
    else:
        source = raw
    try:
        arch = infer_architecture(source)
    except CheckpointError as err:
        raise CheckpointError(f"{path} ({format}): {err}") from None
    if model_depth is not None and model_depth != arch["model_depth"]:
        raise CheckpointError(
            f"{path}: the checkpoint is a SlowFast R{arch['model_depth']}, not R{model_depth} "
            f"(pass --model_depth {arch['model_depth']})"
        )

    config_kwargs = {k: v for k, v in arch.items() if k != "source_num_classes"}
    if "slowfast_fusion_norm_act" not in fields:
        if not config_kwargs["slowfast_fusion_norm_act"]:
            raise CheckpointError(
                f"{path}: its fast-to-slow fusion is a bare convolution (MMAction2 default), but this "
                "ThermalSlowFastConfig has no `slowfast_fusion_norm_act` field to build one; importing it into "
                "a conv+BN+ReLU fusion would silently change the network"
            )
        del config_kwargs["slowfast_fusion_norm_act"]
    contradicted = {k: v for k, v in config_overrides.items() if k in config_kwargs and v != config_kwargs[k]}
    if contradicted:
        raise CheckpointError(f"{path}: " + ", ".join(f"{k} is {config_kwargs[k]} in the checkpoint, not {v}"
                                                        for k, v in contradicted.items())
                              + ": the backbone's shape comes from the checkpoint; drop these overrides")
    config_kwargs.update(config_overrides)
    config = ThermalSlowFastConfig(
        num_labels=num_labels,
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
        **config_kwargs,
    )
    torch.manual_seed(seed)
    model = ThermalSlowFastForVideoClassification(config)
    summary = load_backbone_state(model, source, keep_head=keep_head, origin=f"{path} ({format})")
    model.eval()

    digest = sha256_of(path)
    record = {"file": path.name, "sha256": digest, "format": format}
    try:
        config.base_checkpoint = record
    except Exception:  # a strict config that refuses extra attributes: conversion.json still has it
        pass
    conversion = {
        "source": {"path": str(path.resolve()), **record},
        "architecture": arch,
        **summary,
        "num_labels": num_labels,
        "labels": names,
        "processor": {"mean": pixel_mean, "std": pixel_std},
    }
    # Written into a hidden folder inside the output folder first, then moved into place: a failure (a full disk)
    # leaves an earlier model as it was, never a new config beside old weights. Inside, not beside: the output
    # folder itself (a mount point, `.`, a link, a folder with its own permissions) stays what it is.
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=output_dir))
    try:
        model.save_pretrained(staging)
        ThermalVideoProcessor(**{**processor_kwargs, "num_frames": config.num_frames}).save_pretrained(staging)
        (staging / "conversion.json").write_text(json.dumps(conversion, indent=2) + "\n")
        _replace_contents(output_dir, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return output_dir


_STAGING, _REPLACED = ".importing-", ".replaced-"  # hidden work folders inside the output folder


def _check_output_dir(source: Path, output_dir: Path, overwrite: bool) -> None:
    """Refuse an output folder whose contents the import would lose or mix with: files that are not a model,
    an earlier model without `overwrite`, or the checkpoint being imported."""
    if output_dir.exists() and not output_dir.is_dir():
        raise CheckpointError(f"{output_dir}: the output folder is an existing file; give a folder")
    if output_dir.is_dir():  # an import killed outright leaves its work folders: not the user's files
        for left in [*output_dir.glob(f"{_STAGING}*"), *output_dir.glob(f"{_REPLACED}*")]:
            shutil.rmtree(left, ignore_errors=True)
    held = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if not held:
        return
    shown = ", ".join(held[:6]) + (f" and {len(held) - 6} more" if len(held) > 6 else "")
    if not overwrite:
        raise CheckpointError(f"{output_dir} is not empty ({shown}): import into a new folder, or pass --overwrite "
                              "(overwrite=True) to replace the model it holds")
    if not (output_dir / "config.json").is_file():
        raise CheckpointError(f"{output_dir} holds no saved model (no config.json; it holds {shown}): --overwrite "
                              "replaces a model folder only; import into a new folder")
    if source.is_file() and output_dir.resolve() in source.resolve().parents:
        raise CheckpointError(f"{source} is inside {output_dir}, which --overwrite would replace: import into "
                              "another folder")


def _replace_contents(output_dir: Path, staging: Path) -> None:
    """Move what `output_dir` holds (an earlier model) aside, then the staged files in; on a failure the earlier
    files come back. Renames within one folder: nothing is copied."""
    old = Path(tempfile.mkdtemp(prefix=_REPLACED, dir=output_dir))
    earlier = [p for p in output_dir.iterdir() if p not in (staging, old)]
    moved_in: list[Path] = []
    try:
        for path in earlier:
            path.rename(old / path.name)
        for path in staging.iterdir():
            path.rename(output_dir / path.name)
            moved_in.append(output_dir / path.name)
    except BaseException:
        for path in moved_in:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for path in old.iterdir():
            path.rename(output_dir / path.name)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---- CLI -------------------------------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(
        prog="thermal-hf import-checkpoint",
        description="Convert a Kinetics SlowFast checkpoint (pytorchvideo zoo .pyth or MMAction2 .pth) into a "
        "saved thermal-hf model with a fresh classification head.",
    )
    parser.add_argument("checkpoint", type=Path, help="the .pyth / .pth file")
    parser.add_argument("output_dir", type=Path, help="folder for the saved model and processor")
    parser.add_argument("--format", required=True, choices=FORMATS, help="checkpoint layout")
    parser.add_argument("--num_labels", type=int, default=None, help="classes of the new head")
    parser.add_argument("--labels", nargs="+", default=None, help="class names in id order")
    parser.add_argument("--model_depth", type=int, default=None, choices=(18, 50, 101),
                        help="expected depth (default: read from the checkpoint)")
    parser.add_argument("--num_frames", type=int, default=None, help="clip length of the model (config default 64)")
    parser.add_argument("--image_size", type=int, nargs=2, default=None, metavar=("HEIGHT", "WIDTH"),
                        help="size the backbone runs at (config default 256 384)")
    parser.add_argument("--dropout", type=float, default=None, help="dropout before the new head")
    parser.add_argument("--keep_head", action="store_true",
                        help="keep the Kinetics classifier (num_labels must match it); for checks only")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model OUTPUT_DIR holds (else a folder that is not empty is refused)")
    args = parser.parse_args(argv)
    if args.num_labels is None:
        if args.labels is None:
            parser.error("--num_labels (or --labels) is required")
        args.num_labels = len(args.labels)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    overrides = {
        k: v for k, v in (("num_frames", args.num_frames), ("image_size", args.image_size), ("dropout", args.dropout))
        if v is not None
    }
    try:
        out = import_checkpoint(
            args.checkpoint, args.output_dir, format=args.format, num_labels=args.num_labels, labels=args.labels,
            model_depth=args.model_depth, keep_head=args.keep_head, overwrite=args.overwrite, **overrides,
        )
    except (ValueError, OSError, SafetensorError) as err:  # CheckpointError, bad arguments, a full or read-only disk
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"saved {out} (model + video processor, conversion.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
