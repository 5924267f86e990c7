"""The layers that turn an image UNet into Tune-A-Video's video UNet, as diffusers attention processors,
norm subclasses and a forward hook, so diffusers' own UNet runs unchanged.

All of them work on frames folded into the batch, (batch * frames, ...), and read the frame count from a
shared `FrameContext` that `VideoUNet.forward` sets before each call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.activations import GEGLU
from diffusers.models.attention_processor import Attention
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn


@dataclass
class FrameContext:
    """How many frames the current forward pass folds into each batch element."""

    num_frames: int = 1


def _heads(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    batch, length, inner = x.shape
    return x.view(batch, length, attn.heads, inner // attn.heads).transpose(1, 2)


class FrameAttnProcessor(ABC):
    """A diffusers attention processor for self-attention across the frames of a clip: it projects the frame-folded
    hidden states (batch * frames, tokens, channels) to queries, keys and values, lets `attend` mix them, and projects
    the result out. Subclasses give `attend`."""

    def __init__(self, frames: FrameContext):
        self.frames = frames

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, temb=None, **kwargs) -> torch.Tensor:
        query = attn.to_q(hidden_states)
        out = self.attend(attn, query, attn.to_k(hidden_states), attn.to_v(hidden_states), self.frames.num_frames)
        return attn.to_out[1](attn.to_out[0](out.to(query.dtype)))

    @abstractmethod
    def attend(self, attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               num_frames: int) -> torch.Tensor:
        """(batch * frames, tokens, channels) each -> the attention's output, the same shape."""


class SparseCausalAttnProcessor(FrameAttnProcessor):
    """Self-attention whose queries come from frame i and keys/values from frames 0 and i-1.

    Frame 0 attends to itself twice, as in the official model.
    """

    def attend(self, attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               num_frames: int) -> torch.Tensor:
        batch_frames, length, _ = query.shape

        def gather(x: torch.Tensor) -> torch.Tensor:
            # One buffer written by three slice copies: an index gather and a cat moved the keys and values twice,
            # 7% of an eager guided step of 4 clips (analysis/PERF.md round 14).
            clips = x.view(batch_frames // num_frames, num_frames, length, -1)
            frames_0_and_previous = clips.new_empty(clips.shape[0], num_frames, 2 * length, clips.shape[-1])
            frames_0_and_previous[:, :, :length] = clips[:, :1]
            frames_0_and_previous[:, :1, length:] = clips[:, :1]
            frames_0_and_previous[:, 1:, length:] = clips[:, :-1]
            return frames_0_and_previous.view(batch_frames, 2 * length, -1)

        out = F.scaled_dot_product_attention(_heads(attn, query), _heads(attn, gather(key)), _heads(attn, gather(value)))
        return out.transpose(1, 2).reshape(batch_frames, length, -1)


class TemporalAttnProcessor(FrameAttnProcessor):
    """Self-attention over the frames at each token position. The frames of one position are a sequence and each
    position's heads are heads of its own, so queries, keys and values are views of the frame-folded projections,
    with no transposed copies in or out."""

    def attend(self, attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               num_frames: int) -> torch.Tensor:
        batch_frames, length, inner = query.shape

        def heads(x: torch.Tensor) -> torch.Tensor:  # (clips, tokens * heads, frames, head dim): a view
            return x.view(batch_frames // num_frames, num_frames, length * attn.heads, -1).transpose(1, 2)

        out = _attend_in_slices(heads(query), heads(key), heads(value))
        return out.transpose(1, 2).reshape(batch_frames, length, inner)


# CUDA's flash and memory-efficient attention kernels put the heads on a grid axis of at most 65,535 blocks. Here each
# token position's heads are heads, so a latent of more than 8,191 positions (8 heads; 768 x 768 pixels is 9,216)
# is attended in slices of heads.
MAX_ATTENTION_HEADS = 65535


def _attend_in_slices(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    if query.shape[1] <= MAX_ATTENTION_HEADS:
        return F.scaled_dot_product_attention(query, key, value)
    slices = zip(*(x.split(MAX_ATTENTION_HEADS, dim=1) for x in (query, key, value)))
    return torch.cat([F.scaled_dot_product_attention(*qkv) for qkv in slices], dim=1)


class TemporalResidual:
    """Forward hook: the temporal self-attention of the block's output, added to it."""

    def __call__(self, block: nn.Module, args, hidden_states: torch.Tensor) -> torch.Tensor:
        return block.attn_temp(block.norm_temp(hidden_states)) + hidden_states


def new_temporal_modules(block: nn.Module) -> tuple[nn.LayerNorm, Attention]:
    """Freshly initialised `norm_temp` and `attn_temp` for a BasicTransformerBlock, on its weights' device.

    The output projection starts at zero, weight and bias (the official zeroes the weight only, leaving a small
    random bias), so an inflated UNet starts exactly as the image model. The random projections draw from
    torch's CPU generator, so the same seed gives the same modules.
    """
    dim = block.norm1.normalized_shape[0]
    like = block.attn1.to_q.weight
    norm_temp = HalfLayerNorm(dim).to(like.device, like.dtype)
    attn_temp = Attention(query_dim=dim, heads=block.attn1.heads, dim_head=dim // block.attn1.heads,
                          bias=False, out_bias=True).to(like.device, like.dtype)
    nn.init.zeros_(attn_temp.to_out[0].weight)
    nn.init.zeros_(attn_temp.to_out[0].bias)
    return norm_temp, attn_temp


def add_temporal_attention(block: nn.Module, frames: FrameContext) -> None:
    """Give a diffusers BasicTransformerBlock `norm_temp` and `attn_temp` and run them after its feed-forward.

    The modules keep the official names (`...transformer_blocks.N.attn_temp.to_q`), so the default trainable
    set matches. A forward hook applies them to the block's output, which is the feed-forward's residual sum:
    the same place as in the official block.
    """
    block.norm_temp, block.attn_temp = new_temporal_modules(block)
    block.attn_temp.set_processor(TemporalAttnProcessor(frames))
    block.register_forward_hook(TemporalResidual())


def normalises_in_half(weight: torch.Tensor | None, x: torch.Tensor) -> bool:
    """Whether a norm with this weight normalises in the weight's half dtype: half weights under autocast."""
    return weight is not None and weight.dtype != torch.float32 and torch.is_autocast_enabled(x.device.type)


class HalfNorm:
    """A norm that normalises in its weights' half dtype under autocast, rendering and training.

    Autocast runs every norm in fp32: it casts the half input up, writes an fp32 output, and the next layer casts
    it back down, so the norm, what follows it (a SiLU, a transpose) and what backward saves of them move two to
    four times the bytes. With half (frozen) weights the norm runs in their dtype instead: its statistics and its
    backward's reductions still accumulate in fp32 inside torch's kernels, and its output takes the rounding the
    next layer's cast gave it (analysis/PERF.md round 15). Norms with fp32 weights (`train.frozen_dtype=fp32`, a
    trained norm) keep autocast's fp32. Subclasses give `_normalise`."""

    weight: torch.Tensor | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if normalises_in_half(self.weight, x):
            with torch.autocast(x.device.type, enabled=False):
                return self._normalise(x.to(self.weight.dtype))
        return self._normalise(x)


class HalfLayerNorm(HalfNorm, nn.LayerNorm):
    """nn.LayerNorm that normalises in its half weights' dtype; same parameters and state-dict keys."""

    @classmethod
    def replacing(cls, norm: nn.LayerNorm) -> "HalfLayerNorm":
        """A HalfLayerNorm that shares `norm`'s parameter tensors (no copy)."""
        new = cls(norm.normalized_shape, eps=norm.eps, elementwise_affine=False)
        new.weight, new.bias = norm.weight, norm.bias
        new.elementwise_affine = norm.elementwise_affine
        return new

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class HalfGroupNorm(HalfNorm, nn.GroupNorm):
    """nn.GroupNorm (per frame) that normalises in its half weights' dtype; same parameters and state-dict keys."""

    @classmethod
    def replacing(cls, norm: nn.GroupNorm) -> "HalfGroupNorm":
        """An instance of `cls` that shares `norm`'s parameter tensors (no copy)."""
        new = cls(norm.num_groups, norm.num_channels, eps=norm.eps, affine=False)
        new.weight, new.bias = norm.weight, norm.bias
        new.affine = norm.affine
        return new

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return self._group_norm(x, num_frames=1)

    def _group_norm(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Statistics over each clip's `num_frames` frames, in x's layout (channels-last or channels-first)."""
        if torch.is_autocast_enabled(x.device.type):
            x = x.float()  # what autocast does to a GroupNorm's input
        if is_channels_last(x):
            return channels_last_group_norm(x, self.num_groups, self.weight, self.bias, self.eps, num_frames)
        if num_frames == 1:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return ClipGroupNorm.apply(x, self.weight, self.bias, num_frames, self.num_groups, self.eps)


class FrameGroupNorm(HalfGroupNorm):
    """GroupNorm whose statistics span all frames of a clip, as the official model's 5-D GroupNorm.

    A drop-in subclass: its parameters and state-dict keys are those of the GroupNorm it replaces; it normalises in
    its half weights' dtype as every HalfGroupNorm.
    """

    frames: FrameContext

    @classmethod
    def replacing(cls, norm: nn.GroupNorm, frames: FrameContext) -> "FrameGroupNorm":
        """A FrameGroupNorm that shares `norm`'s parameter tensors (no copy)."""
        new = super().replacing(norm)
        new.frames = frames
        return new

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return self._group_norm(x, self.frames.num_frames)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether `x` (batch, channels, ...) holds its channels innermost (torch.channels_last), not as its shape."""
    return x.ndim >= 3 and not x.is_contiguous() and x.movedim(1, -1).is_contiguous()


def channels_last_group_norm(x: torch.Tensor, num_groups: int, weight: torch.Tensor | None,
                             bias: torch.Tensor | None, eps: float, num_frames: int = 1) -> torch.Tensor:
    """GroupNorm of channels-last activations (frames folded into the batch) in their own layout, statistics
    over each clip's `num_frames` frames: each channel's moments over the clip (one read), pooled per group, then
    one pass x * scale + shift. torch's GroupNorm and ClipGroupNorm's batch-norm rows read channels-first, so
    they would convert the layout both ways around every norm. The statistics round as x's dtype, as
    ClipGroupNorm's; the scale and shift take x's dtype too (torch's kernels keep them in fp32)."""
    batch_frames, channels = x.shape[:2]
    tokens = x.movedim(1, -1).reshape(batch_frames // num_frames, -1, channels)  # a view
    per_group = (-1, num_groups, channels // num_groups)
    mean, var = (t.view(per_group) for t in _moments(tokens, dim=1))
    group_mean, group_var = _pooled(mean, var, dim=-1, keepdim=True)
    scale = (group_var + eps).rsqrt().expand(per_group).reshape(-1, 1, channels)
    if weight is not None:
        scale = scale * weight.float()
    shift = -group_mean.expand(per_group).reshape(-1, 1, channels) * scale
    if bias is not None:
        shift = shift + bias.float()
    out = torch.addcmul(shift.to(x.dtype), tokens, scale.to(x.dtype))
    return out.view(batch_frames, *x.shape[2:], channels).movedim(-1, 1)


def _moments(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) variance of `x` along `dim`, computed in x's dtype and returned in fp32."""
    if x.dtype == torch.float16:  # the moments come out in x's dtype: fp16 holds a std up to 65504, a var to 256^2
        std, mean = torch.std_mean(x, dim=dim, correction=0)
        return mean.float(), std.float().square()
    var, mean = torch.var_mean(x, dim=dim, correction=0)  # bf16's variance rounds once, its std squared twice
    return mean.float(), var.float()


def _pooled(mean: torch.Tensor, var: torch.Tensor, dim: int, keepdim: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and variance of the union of equal-sized parts, from each part's along `dim`."""
    pooled_mean = mean.mean(dim, keepdim=True)
    pooled_var = (var + (mean - pooled_mean).square()).mean(dim, keepdim=keepdim)
    return (pooled_mean if keepdim else pooled_mean.squeeze(dim)), pooled_var


def _per_channel(per_group: torch.Tensor, channels: int, num_frames: int) -> torch.Tensor:
    """(clips, groups) -> one value a frame and channel, (clips * frames * channels,)."""
    clips, groups = per_group.shape
    per_clip_channel = per_group.repeat_interleave(channels // groups, dim=1)
    return per_clip_channel.unsqueeze(1).expand(clips, num_frames, channels).reshape(-1)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(batch * frames, channels, ...) -> (1, batch * frames * channels, pixels): one batch-norm channel a frame and
    channel, so batch norm's kernels apply or reduce per frame and channel."""
    return x.reshape(1, x.shape[0] * x.shape[1], -1)


class ClipGroupNorm(torch.autograd.Function):
    """GroupNorm of frame-folded activations (batch * frames, channels, ...) with statistics over each clip's
    frames, in the frames' own layout: each frame's group moments (one read of the activations, enough blocks for
    every SM), pooled per clip, and one pass applying each frame and channel its scale and shift in fp32 through
    batch norm's inference kernel. The clip's layout (a transpose) costs two copies each way and gives torch's
    GroupNorm one row a group and clip, 32 blocks for a GPU of 132 SMs: an eager training step 266 -> 249 ms, a guided
    step of 4 clips 686 -> 663 ms on an H100 (analysis/PERF.md round 17).

    Backward: batch norm's backward reduction gives each frame and channel its sums of dy and dy * x_hat in fp32,
    pooled per clip and group; the input's gradient is one more affine pass, as torch's GroupNorm backward computes
    it. The statistics round as the activations' dtype (bf16 under autocast); everything after accumulates in fp32.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, num_frames: int,
                num_groups: int, eps: float) -> torch.Tensor:
        batch_frames, channels = x.shape[:2]
        frame_groups = x.reshape(batch_frames // num_frames, num_frames, num_groups, -1)
        mean, var = _moments(frame_groups, dim=-1)  # (clips, frames, groups)
        clip_mean, clip_var = _pooled(mean, var, dim=1)
        mean_rows, var_rows = (_per_channel(t, channels, num_frames) for t in (clip_mean, clip_var))
        weight_rows, bias_rows = (None if t is None else t.float().repeat(batch_frames) for t in (weight, bias))
        out = F.batch_norm(_rows(x), mean_rows, var_rows, weight_rows, bias_rows, False, 0.0, eps)
        ctx.save_for_backward(x, weight, clip_var, mean_rows, var_rows)
        ctx.num_frames, ctx.eps, ctx.bias_dtype = num_frames, eps, None if bias is None else bias.dtype
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight, clip_var, mean_rows, var_rows = ctx.saved_tensors
        num_frames, eps = ctx.num_frames, ctx.eps
        channels = x.shape[1]
        clips, groups = clip_var.shape
        rstd = (clip_var + eps).rsqrt()
        # aten's batch-norm backward is the one op that sums dy and dy * x_hat per channel in fp32 without writing
        # their product; asked for the weight and bias gradients only, it writes nothing the size of x.
        _, dy_xhat, dy_sum = torch.ops.aten.native_batch_norm_backward(
            _rows(grad_out), _rows(x), torch.ones_like(mean_rows), None, None, mean_rows, (var_rows + eps).rsqrt(),
            True, eps, [False, True, True])
        dy_xhat, dy_sum = dy_xhat.view(clips, num_frames, channels), dy_sum.view(clips, num_frames, channels)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            scale = weight.float() if weight is not None else torch.ones(channels, device=x.device)
            count = num_frames * x[0, 0].numel() * (channels // groups)

            def mean_of_group(per_channel: torch.Tensor) -> torch.Tensor:  # mean of weight * it over clip and group
                return (per_channel * scale).sum(1).view(clips, groups, -1).sum(-1) / count

            # dx = rstd * (weight * dy - mean(weight * dy) - x_hat * mean(weight * dy * x_hat)), means over each clip
            # and group: x normalised as in forward with a weight and bias of its own, plus rstd * weight * dy.
            x_hat_weight, x_hat_bias = -rstd * mean_of_group(dy_xhat), -rstd * mean_of_group(dy_sum)
            affine = F.batch_norm(_rows(x), mean_rows, var_rows, _per_channel(x_hat_weight, channels, num_frames),
                                  _per_channel(x_hat_bias, channels, num_frames), False, 0.0, eps)
            dy_scale = rstd.repeat_interleave(channels // groups, dim=1) * scale
            clip_shape = (clips, num_frames, *x.shape[1:])
            grad_x = torch.addcmul(affine.view(clip_shape), grad_out.reshape(clip_shape),
                                   dy_scale.view(clips, 1, channels, *[1] * (x.ndim - 2)).to(x.dtype)).view(x.shape)
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = dy_xhat.sum((0, 1)).to(weight.dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_bias = dy_sum.sum((0, 1)).to(ctx.bias_dtype)
        return grad_x, grad_weight, grad_bias, None, None, None


class TokenProjection(nn.Module):
    """An SD-1.x transformer's `proj_in`/`proj_out`, a 1x1 convolution, applied to the tokens as the linear layer it is.

    Diffusers' Transformer2DModel with `use_linear_projection` projects the tokens (batch, positions, channels)
    instead of the image (batch, channels, height, width): cuBLAS adds the bias inside the matmul, and the copies
    between the two layouts around the projections halve. An eager guided step of 4 clips 737 -> 703 ms on an H100
    (analysis/PERF.md round 16). The same products of the same weights: the convolution's parameters, their shapes
    and state-dict keys unchanged. A LoRA on a projection puts it back as the convolution first (`project_image`)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias  # (out, in, 1, 1) and (out,): the convolution's tensors

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.linear(tokens, self.weight.flatten(1), self.bias)


class TokenTransformer2DModel(Transformer2DModel):
    """Transformer2DModel whose projected tokens, rendering in channels-last, go back to the image as the NHWC view
    they are.

    diffusers copies the output tokens to an NCHW image (`.contiguous()`), which the next convolution of a
    channels-last UNet converts straight back: with that copy an eager guided step of 4 clips takes 700 ms in
    channels-last, without it 626 ms, against 654 ms channels-first, on an H100 (analysis/PERF.md round 21).
    The one reach inside diffusers: its private `_get_output_for_continuous_inputs` (diffusers 0.42), overridden
    for channels-last activations with TokenProjections; everything else runs diffusers' own."""

    def _get_output_for_continuous_inputs(self, hidden_states, residual, batch_size, height, width, inner_dim):
        if not (isinstance(self.proj_out, TokenProjection) and is_channels_last(residual)):
            return super()._get_output_for_continuous_inputs(hidden_states, residual, batch_size, height, width,
                                                             inner_dim)
        tokens = self.proj_out(hidden_states)
        return tokens.reshape(batch_size, height, width, inner_dim).permute(0, 3, 1, 2) + residual


def project_tokens(transformer: nn.Module) -> None:
    """Switch a diffusers Transformer2DModel with 1x1-convolution projections to TokenProjections, in place (and
    to a TokenTransformer2DModel, same state)."""
    if not isinstance(transformer.proj_in, nn.Conv2d):  # SD-2's linear projections, or projecting tokens already
        return
    transformer.proj_in = TokenProjection(transformer.proj_in)
    transformer.proj_out = TokenProjection(transformer.proj_out)
    transformer.use_linear_projection = True
    if type(transformer) is Transformer2DModel:
        transformer.__class__ = TokenTransformer2DModel


def project_image(transformer: nn.Module) -> None:
    """Undo `project_tokens`, in place: 1x1 convolutions over the image again, holding the same parameters (peft
    adapts convolutions with LoRA, not TokenProjections)."""
    if not isinstance(transformer.proj_in, TokenProjection):
        return
    for name in ("proj_in", "proj_out"):
        tokens = getattr(transformer, name)
        conv = nn.Conv2d(tokens.weight.shape[1], tokens.weight.shape[0], 1, bias=tokens.bias is not None, device="meta")
        conv.weight, conv.bias = tokens.weight, tokens.bias
        setattr(transformer, name, conv)
    transformer.use_linear_projection = False


class SplitGEGLU(GEGLU):
    """Diffusers' GEGLU with its projection's two halves applied as two matmuls.

    GEGLU projects to twice its width and splits the result, so the GELU and the product read strided halves (the
    slow path of torch's elementwise kernels); two matmuls over the weight's row halves (views) write contiguous
    halves instead: an eager guided step of 4 clips 737 -> 716 ms on an H100 (analysis/PERF.md round 16). The same
    products of the same weights; where peft wrapped the projection in a LoRA layer, diffusers' own forward runs."""

    @classmethod
    def replacing(cls, geglu: GEGLU) -> "SplitGEGLU":
        """A SplitGEGLU that holds `geglu`'s projection (the same module)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.proj = geglu.proj
        return new

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if type(self.proj) is not nn.Linear:
            return super().forward(hidden_states, *args, **kwargs)
        weights = self.proj.weight.chunk(2)
        biases = self.proj.bias.chunk(2) if self.proj.bias is not None else (None, None)
        return F.linear(hidden_states, weights[0], biases[0]) * self.gelu(F.linear(hidden_states, weights[1], biases[1]))
