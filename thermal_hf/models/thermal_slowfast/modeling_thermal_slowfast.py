"""SlowFast (pytorchvideo) as a `transformers` video classifier for low-resolution thermal clips."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_thermal_slowfast import TEST_TIME_VIEWS, ThermalSlowFastConfig

with warnings.catch_warnings():
    # pytorchvideo decorates a few helpers with torch.jit.script at import time, which recent torch flags as
    # deprecated; the warning is noise for every thermal-hf command.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from pytorchvideo.models.slowfast import FastToSlowFusionBuilder, create_slowfast


def build_slowfast(config: ThermalSlowFastConfig) -> nn.Module:
    """The pytorchvideo SlowFast network described by `config`, with an adaptive pooling head.

    Everything not in the config is pytorchvideo's default (the Kinetics SLOWFAST_8x8 architecture), so that
    pytorchvideo zoo weights load strictly. The only departure is the head pooling: pytorchvideo's default
    `AvgPool3d` kernels ((8, 7, 7), (32, 7, 7)) assume 224-pixel, 64-frame inputs; `AdaptiveAvgPool3d` to
    (1, 1, 1) works at any size and has no parameters, so the state dict is unchanged.

    `config.slowfast_fusion_norm_act=False` drops the BatchNorm + ReLU of the Fast-to-Slow laterals (MMAction2's
    architecture, for its checkpoints); the default keeps pytorchvideo's conv + BN + ReLU.
    """
    # The same builder create_slowfast makes by default, with the lateral norm/activation made optional.
    fusion_builder = FastToSlowFusionBuilder(
        slowfast_channel_reduction_ratio=config.slowfast_channel_ratio,
        conv_fusion_channel_ratio=config.slowfast_fusion_channel_ratio,
        conv_kernel_size=(config.slowfast_fusion_kernel_size, 1, 1),
        conv_stride=(config.slowfast_alpha, 1, 1),
        norm=nn.BatchNorm3d if config.slowfast_fusion_norm_act else None,
        activation=nn.ReLU if config.slowfast_fusion_norm_act else None,
        max_stage_idx=3,  # laterals after the stem and stages 1-3, none after the last stage
    ).create_module
    return create_slowfast(
        input_channels=(config.stem_channels, config.stem_channels),
        model_depth=config.model_depth,
        model_num_class=config.num_labels,
        dropout_rate=float(config.dropout),
        slowfast_channel_reduction_ratio=(config.slowfast_channel_ratio,),
        slowfast_conv_channel_fusion_ratio=config.slowfast_fusion_channel_ratio,
        fusion_builder=fusion_builder,
        stem_dim_outs=(config.stem_width, config.stem_width // config.slowfast_channel_ratio),
        stem_pool=(nn.MaxPool3d, nn.MaxPool3d) if config.stem_pool else (None, None),
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
        head_activation=None,  # logits out; softmax belongs to the loss / pipeline
        head_output_with_global_average=True,
    )


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once
    os.umask(mask)
    return mask


def _run_pathway_block(block: nn.Module, *pathways: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Run a multipathway block on tensors given one by one (as activation checkpointing needs them).

    pytorchvideo's `MultiPathWayWithFuse` writes its outputs into the input list in place, so the
    recomputation in the backward pass must get a fresh list, never the one the forward pass mutated.
    """
    return tuple(block(list(pathways)))


class ThermalSlowFastPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading conventions shared by thermal SlowFast models."""

    config: ThermalSlowFastConfig
    config_class = ThermalSlowFastConfig
    base_model_prefix = "slowfast"
    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with the weight files readable as the folder's other files.

        safetensors (0.8) writes them through a private temporary file, mode 0600 whatever the umask: a model
        folder shared with a serving account or a team would hold a config it can read and weights it cannot.
        """
        out = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            mode = 0o666 & ~_umask()
            for path in Path(save_directory).glob("model*.safetensors"):  # what save_pretrained writes
                if path.stat().st_mode & 0o777 != mode:
                    path.chmod(mode)
        return out

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """pytorchvideo's ResNet initialisation (`pytorchvideo.models.weight_init._init_resnet_weights`).

        Convolutions: Kaiming normal, fan_out, ReLU gain (Caffe2 "MSRAFill"), bias 0. Batch norms: weight 1,
        bias 0, except the last norm of every residual bottleneck (flagged `block_final_bn` by pytorchvideo),
        whose weight starts at 0 so each block starts as an identity. Linear: N(0, head_init_std), bias 0.
        The library default (N(0, 0.02) everywhere) would be wrong for this network; `from_pretrained` uses
        this method to build a fresh head, so it must not be a no-op.
        """
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._NormBase):
            if module.weight is not None:
                if getattr(module, "block_final_bn", False):
                    init.zeros_(module.weight)
                else:
                    init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
            if module.running_mean is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.head_init_std)
            if module.bias is not None:
                init.zeros_(module.bias)


class ThermalSlowFastForVideoClassification(ThermalSlowFastPreTrainedModel):
    """SlowFast video classifier taking native-resolution, normalised thermal clips.

    `forward` does on the device what would be expensive to do in data loading: resize every frame to
    `config.image_size`, repeat the clip channels to `config.stem_channels`, and pack the Slow (every
    `slow_temporal_stride`-th frame) and Fast (every `fast_temporal_stride`-th frame) pathways.

    The pytorchvideo network is `self.slowfast`, so state-dict keys are `slowfast.<pytorchvideo key>`
    (e.g. `slowfast.blocks.0.multipathway_blocks.0.conv.weight`); the classification head is the last block,
    `slowfast.blocks.<N-1>` (`slowfast.blocks.6` for R18/R50/R101), with its projection `...proj`.

    Activation checkpointing (`model.activation_checkpointing_enable()`, or `gradient_checkpointing=True` in
    `TrainingArguments`) checkpoints the stem and the four residual stages. Gradients are unchanged; the one
    side effect is that batch-norm running statistics are updated twice per step (the recomputation runs in
    training mode), i.e. they track the batch statistics with a slightly higher effective momentum.
    """

    def __init__(self, config: ThermalSlowFastConfig):
        # Again here: `from_pretrained(..., key=value)` and attribute edits change a config after its own checks.
        config._check_values()
        super().__init__(config)
        self.slowfast = build_slowfast(config)
        self.gradient_checkpointing = False
        self.post_init()

    # ---- parameter groups (differential learning rates) -------------------------------------------------
    @property
    def head_prefix(self) -> str:
        """State-dict prefix of the classification head, e.g. `"slowfast.blocks.6."`."""
        return f"slowfast.blocks.{len(self.slowfast.blocks) - 1}."

    def get_head_parameter_names(self) -> set[str]:
        """Names (as in `named_parameters()`) of the classification head's parameters."""
        return {name for name, _ in self.named_parameters() if name.startswith(self.head_prefix)}

    def head_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """`(name, parameter)` pairs of the classification head."""
        return ((n, p) for n, p in self.named_parameters() if n.startswith(self.head_prefix))

    def backbone_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """`(name, parameter)` pairs of everything except the classification head."""
        return ((n, p) for n, p in self.named_parameters() if not n.startswith(self.head_prefix))

    # ---- input packing ------------------------------------------------------------------------------------
    def pack_pathways(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """`(B, T, H, W)` or `(B, T, C, H, W)` clip -> `[slow, fast]`, each `(B, stem_channels, T', H', W')`."""
        config = self.config
        if pixel_values.ndim == 4:
            pixel_values = pixel_values.unsqueeze(2)
        if pixel_values.ndim != 5:
            raise ValueError(
                f"pixel_values must be (batch, frames, height, width) or (batch, frames, channels, height, width), "
                f"got shape {tuple(pixel_values.shape)}"
            )
        batch, frames, channels, height, width = pixel_values.shape
        if channels != config.num_channels:
            raise ValueError(f"pixel_values has {channels} channels, the config expects num_channels={config.num_channels}")
        config.check_num_frames(frames, "pixel_values' frames", hint=f" (the processor gives {config.num_frames})")
        x = pixel_values.to(self.dtype)
        # Only the frames some pathway uses are resized (every fast_temporal_stride-th, slow ones are a subset).
        x = x[:, :: config.fast_temporal_stride]
        size = tuple(config.image_size)
        if (height, width) != size:
            t = x.shape[1]
            x = F.interpolate(x.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
            x = x.view(batch, t, channels, *size)
        if config.stem_channels != channels:
            # Repeated after resizing: resizing one channel is cheaper than three identical ones.
            x = x.repeat_interleave(config.stem_channels // channels, dim=2)
        fast = x.transpose(1, 2).contiguous()  # (B, C, T_fast, H, W)
        slow = fast[:, :, :: config.slowfast_alpha].contiguous()
        return [slow, fast]

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, frames, height, width)` or
                `(batch, frames, channels, height, width)`): cleaned, normalised clips at any spatial size
                (`ThermalVideoProcessor` output); resized to `config.image_size` here.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*): class ids; or float class
                probabilities `(batch, num_labels)` (mixup / cutmix). Gives a mean cross-entropy `loss`.
            output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`): also return
                `hidden_states`: each pathway's output of the stem and of the four residual stages, Slow then Fast
                (`(batch, channels, frames, height, width)`, 10 tensors), then the pooled features the head
                classifies (`(batch, features, 1, 1, 1)`). With test-time views, those of the clip as given.
            return_dict (`bool`, *optional*, defaults to `config.return_dict`): `False` returns a tuple.

        Out of training, with `config.test_time_views` > 1, `logits` are the log of the mean probabilities of the
        clip's views (`softmax(logits)` is that mean), and `loss` is computed on them.

        No `**kwargs` on purpose: with them, `Trainer` assumes the model already scales its loss for
        gradient accumulation and the gradients come out multiplied by the accumulation steps.
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if return_dict is None:
            return_dict = self.config.return_dict
        hidden_states = [] if output_hidden_states else None

        def view_logits(view: torch.Tensor, first: bool) -> torch.Tensor:
            if first and hidden_states is not None:
                return self.single_view_logits(view, hidden_states)
            return self.single_view_logits(view)

        views = 1 if self.training else self.config.test_time_views
        if views == 1:
            logits = view_logits(pixel_values, True)
        else:
            # One view at a time: memory stays that of a single forward pass, whatever the number of views. The
            # mean probability is taken in log space (log-sum-exp), so a view sure of another class cannot give a
            # probability that underflows to 0 and an infinite loss.
            log_probabilities = [F.log_softmax(view_logits(view, i == 0).float(), dim=-1)
                                 for i, view in enumerate(clip_views(pixel_values, views))]
            logits = torch.logsumexp(torch.stack(log_probabilities), dim=0) - math.log(views)

        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if labels.is_floating_point() and labels.shape == logits.shape:
                loss = F.cross_entropy(logits.float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.long().view(-1))
        output = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=None if hidden_states is None else tuple(hidden_states)
        )
        return output if return_dict else output.to_tuple()

    def set_test_time_views(self, views: int) -> None:
        """Answer with `views` test-time views from now on (`config.test_time_views`, checked as the config checks
        it: a `ValueError` leaves the model as it was)."""
        previous = self.config.test_time_views
        self.config.test_time_views = views
        try:
            self.config._check_values()
        except ValueError:
            self.config.test_time_views = previous
            raise

    def single_view_logits(self, pixel_values: torch.Tensor, hidden_states: list | None = None) -> torch.Tensor:
        """The network's logits for the clips as given: one view, whatever `config.test_time_views` says. A list
        given as `hidden_states` receives the pathway stages' outputs and the pooled features (see `forward`)."""
        x = self.pack_pathways(pixel_values)
        blocks = self.slowfast.blocks
        checkpointing = self.gradient_checkpointing and self.training
        if checkpointing and getattr(self._gradient_checkpointing_func, "keywords", {}).get("use_reentrant", False):
            # Reentrant checkpointing only back-propagates into a segment whose inputs require grad; without
            # this the stem would silently get no gradient. (The default, non-reentrant, does not need it.)
            x = [p.requires_grad_() if not p.requires_grad else p for p in x]
        for idx, block in enumerate(blocks):
            # Checkpoint the pathway stages (stem + 4 residual stages), not the cheap pool / head.
            if checkpointing and idx < len(blocks) - 2:
                x = list(self._gradient_checkpointing_func(_run_pathway_block, block, *x))
            else:
                x = block(x)
            if hidden_states is not None and idx < len(blocks) - 1:
                hidden_states.extend(x if isinstance(x, (list, tuple)) else [x])
        return x


def clip_views(pixel_values: torch.Tensor, views: int) -> Iterator[torch.Tensor]:
    """The first `views` (1, 2, 4 or 8) of a clip's symmetries, on its last two (height, width) dimensions: the clip,
    its left-right mirror, its up-down mirror, its turn by 180 degrees, then its turns by 90 and 270 degrees and
    their left-right mirrors (those transpose height and width: the model resizes them to a square `image_size`,
    and resizing commutes with the turn)."""
    if views not in TEST_TIME_VIEWS:
        raise ValueError(f"views must be one of {TEST_TIME_VIEWS}, got {views}")
    hw = (-2, -1)
    candidates = (
        lambda x: x,
        lambda x: torch.flip(x, dims=(-1,)),
        lambda x: torch.flip(x, dims=(-2,)),
        lambda x: torch.flip(x, dims=hw),
        lambda x: torch.rot90(x, 1, dims=hw),
        lambda x: torch.flip(torch.rot90(x, 1, dims=hw), dims=(-1,)),
        lambda x: torch.rot90(x, 3, dims=hw),
        lambda x: torch.flip(torch.rot90(x, 3, dims=hw), dims=(-1,)),
    )
    return (view(pixel_values) for view in candidates[:views])


__all__ = ["ThermalSlowFastPreTrainedModel", "ThermalSlowFastForVideoClassification", "build_slowfast", "clip_views"]
