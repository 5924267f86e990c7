import copy

import pytest
import torch
from diffusers.models.activations import GEGLU
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from tav.models import video_layers
from tav.models.video_layers import (FrameContext, FrameGroupNorm, HalfGroupNorm, HalfLayerNorm,
                                     SparseCausalAttnProcessor, SplitGEGLU, TemporalAttnProcessor, TokenProjection,
                                     normalises_in_half, project_tokens)


def test_sparse_causal_attention_matches_per_frame_reference_forward_and_backward():
    frames = FrameContext(num_frames=4)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    x = torch.randn(2 * 4, 5, 16, requires_grad=True)  # 2 clips of 4 frames, 5 tokens each
    out = SparseCausalAttnProcessor(frames)(attn, x)

    clips = x.view(2, 4, 5, 16)
    expected = []
    for b in range(2):
        for i in range(4):
            context = torch.cat([clips[b, 0], clips[b, max(i - 1, 0)]])  # keys/values: frame 0 and frame i-1
            q = attn.to_q(clips[b, i]).view(5, 2, 8).transpose(0, 1)
            k = attn.to_k(context).view(10, 2, 8).transpose(0, 1)
            v = attn.to_v(context).view(10, 2, 8).transpose(0, 1)
            weights = (q @ k.transpose(1, 2) / 8 ** 0.5).softmax(-1)
            expected.append(attn.to_out[0]((weights @ v).transpose(0, 1).reshape(5, 16)))
    expected = torch.stack(expected)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

    upstream = torch.randn_like(out)
    grad, = torch.autograd.grad(out, x, upstream)
    expected_grad, = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)


def test_temporal_attention_is_diffusers_attention_over_each_positions_frames_forward_and_backward():
    attn = Attention(query_dim=16, heads=2, dim_head=8, out_bias=True)
    x = torch.randn(2 * 4, 5, 16, requires_grad=True)  # 2 clips of 4 frames, 5 tokens each
    out = TemporalAttnProcessor(FrameContext(num_frames=4))(attn, x)

    # the reference: each token position's 4 frames as one sequence, through diffusers' own processor
    per_position = x.view(2, 4, 5, 16).transpose(1, 2).reshape(2 * 5, 4, 16)
    expected = AttnProcessor2_0()(attn, per_position).view(2, 5, 4, 16).transpose(1, 2).reshape(8, 5, 16)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

    upstream = torch.randn_like(out)
    grad, = torch.autograd.grad(out, x, upstream)
    expected_grad, = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)


def test_temporal_attention_over_more_heads_than_a_cuda_grid_takes_attends_in_slices(monkeypatch):
    attn = Attention(query_dim=16, heads=2, dim_head=8, out_bias=True)
    x = torch.randn(2 * 4, 5, 16)  # 5 positions x 2 heads = 10 heads a clip
    whole = TemporalAttnProcessor(FrameContext(num_frames=4))(attn, x)
    monkeypatch.setattr(video_layers, "MAX_ATTENTION_HEADS", 3)
    calls = []
    sdpa = video_layers.F.scaled_dot_product_attention
    monkeypatch.setattr(video_layers.F, "scaled_dot_product_attention", lambda *a: calls.append(a[0].shape) or sdpa(*a))
    sliced = TemporalAttnProcessor(FrameContext(num_frames=4))(attn, x)
    assert [shape[1] for shape in calls] == [3, 3, 3, 1]
    torch.testing.assert_close(sliced, whole)


def test_frame_group_norm_shares_statistics_across_frames_like_5d_groupnorm():
    frames = FrameContext(num_frames=3)
    reference = nn.GroupNorm(4, 8)
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    norm = FrameGroupNorm.replacing(reference, frames)
    # (batch, channels, frames, h, w) as the official model holds it; frames of unlike means and spreads
    clip = torch.randn(2, 8, 3, 5, 5) * torch.tensor([0.5, 1.0, 3.0]).view(1, 1, 3, 1, 1) + torch.randn(2, 8, 3, 1, 1)
    clip.requires_grad_()
    folded = clip.transpose(1, 2).reshape(6, 8, 5, 5)
    expected = reference(clip).transpose(1, 2).reshape(6, 8, 5, 5)
    grad_out = torch.randn(6, 8, 5, 5)
    expected_grads = torch.autograd.grad(expected, (clip, reference.weight, reference.bias), grad_out)
    out = norm(folded)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out, (clip, norm.weight, norm.bias), grad_out)
    for grad, expected_grad in zip(grads, expected_grads):  # input, weight, bias: as the 5-D GroupNorm's backward
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(norm(folded), expected, rtol=1e-5, atol=1e-5)
    assert norm.weight is reference.weight  # same parameters, same state-dict keys
    assert set(norm.state_dict()) == set(reference.state_dict())


def test_frame_group_norm_renders_and_trains_in_one_compiled_graph():
    """Rendering and training trace without a graph break, so a compiled UNet keeps each resnet one graph."""
    norm = FrameGroupNorm.replacing(nn.GroupNorm(4, 8), FrameContext(num_frames=3))
    x = torch.randn(6, 8, 5, 5, requires_grad=True)
    compiled = torch.compile(norm, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), norm(x))
    grad_out = torch.randn(6, 8, 5, 5)
    grads = torch.autograd.grad(compiled(x), (x, norm.weight, norm.bias), grad_out)
    for grad, eager in zip(grads, torch.autograd.grad(norm(x), (x, norm.weight, norm.bias), grad_out)):
        torch.testing.assert_close(grad, eager)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_frame_group_norm_in_fp16_normalises_activations_whose_variance_fp16_cannot_hold(memory_format):
    """speed=... frozen_dtype=fp16: a group's std of 1000 is a variance of 1e6, past fp16's 65504."""
    reference = nn.GroupNorm(4, 8)
    norm = FrameGroupNorm.replacing(nn.GroupNorm(4, 8).half().requires_grad_(False), FrameContext(num_frames=3))
    clip = torch.randn(1, 8, 3, 5, 5) * 1000
    with torch.autocast("cpu", dtype=torch.float16):
        out = norm(clip.transpose(1, 2).reshape(3, 8, 5, 5).half().contiguous(memory_format=memory_format))
    expected = reference(clip).transpose(1, 2).reshape(3, 8, 5, 5)
    torch.testing.assert_close(out.float(), expected, rtol=0.01, atol=0.01)


def test_frame_group_norm_on_one_frame_is_plain_groupnorm():
    reference = nn.GroupNorm(2, 4)
    norm = FrameGroupNorm.replacing(reference, FrameContext(num_frames=1))
    x = torch.randn(3, 4, 6, 6)
    torch.testing.assert_close(norm(x), reference(x))


@pytest.mark.parametrize("num_frames", [1, 3])
def test_a_group_norm_normalises_channels_last_activations_in_their_layout(num_frames):
    """Rendering in channels-last: the same values as the channels-first norm, the output still channels-last
    (no copy back to NCHW for the next convolution), gradients through it too."""
    reference = nn.GroupNorm(4, 8)
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    norm = FrameGroupNorm.replacing(reference, FrameContext(num_frames=num_frames))
    x = (torch.randn(6, 8, 5, 7) * 3 + torch.randn(6, 8, 1, 1)).requires_grad_()
    channels_last = x.to(memory_format=torch.channels_last)
    assert video_layers.is_channels_last(channels_last) and not video_layers.is_channels_last(x)
    out = norm(channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    expected = norm(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn(6, 8, 5, 7)
    for grad, expected_grad in zip(torch.autograd.grad(out, (x, norm.weight, norm.bias), grad_out),
                                   torch.autograd.grad(expected, (x, norm.weight, norm.bias), grad_out)):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-4)
    per_frame = HalfGroupNorm.replacing(reference)
    torch.testing.assert_close(per_frame(channels_last), reference(x), rtol=1e-5, atol=1e-5)


def test_a_channels_last_group_norm_in_bf16_stays_within_its_rounding():
    """The scale and shift round to bf16 there (torch's kernel keeps them fp32): a few bf16 steps at most."""
    reference = nn.GroupNorm(4, 8)
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    half = HalfGroupNorm.replacing(copy.deepcopy(reference).to(torch.bfloat16).requires_grad_(False))
    x = (torch.randn(6, 8, 16, 16) * 4 + 2).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = half(x.to(memory_format=torch.channels_last))
        same_layout = half(x)
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.float(), same_layout.float(), rtol=0.03, atol=0.03)
    torch.testing.assert_close(out.float(), reference(x.float()), rtol=0.03, atol=0.03)


NORMS = {  # norm kind -> (a plain torch norm, its replacement, an input the norm takes)
    "frame group norm": (lambda: nn.GroupNorm(4, 8), lambda n: FrameGroupNorm.replacing(n, FrameContext(num_frames=3)),
                         (6, 8, 5, 5)),
    "group norm": (lambda: nn.GroupNorm(4, 8), HalfGroupNorm.replacing, (6, 8, 5, 5)),
    "layer norm": (lambda: nn.LayerNorm(8), HalfLayerNorm.replacing, (6, 25, 8)),
}


@pytest.mark.parametrize("kind", NORMS)
def test_a_norm_normalises_in_its_half_weights_dtype_rendering_and_training(kind):
    plain, replacing, shape = NORMS[kind]
    reference = plain()
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    half = replacing(plain().to(torch.bfloat16).requires_grad_(False))
    half.load_state_dict(reference.state_dict())
    x = torch.randn(shape).to(torch.bfloat16)  # autocast's activations: what a half norm meets in the UNet
    expected = replacing(reference)(x.float())
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        rendered = half(x)
    assert rendered.dtype == torch.bfloat16  # not autocast's fp32: half the bytes for what follows
    torch.testing.assert_close(rendered.float(), expected, rtol=0.02, atol=0.05)

    x_half, x_reference = x.clone().requires_grad_(), x.float().requires_grad_()
    grad_out = torch.randn(shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = half(x_half)
    assert trained.dtype == torch.bfloat16  # training too: the half weights are frozen, gradients reach the input
    trained.backward(grad_out.to(torch.bfloat16))
    replacing(reference)(x_reference).backward(grad_out)
    assert x_half.grad.dtype == torch.bfloat16
    torch.testing.assert_close(x_half.grad.float(), x_reference.grad, rtol=0.05, atol=0.05)

    with torch.no_grad():  # without autocast there is no half dtype to work in
        assert not normalises_in_half(half.weight, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 weights (trained norms) keep autocast's fp32
        assert not normalises_in_half(reference.weight, x)
    assert set(half.state_dict()) == set(reference.state_dict())


def test_a_transformer_projecting_tokens_is_the_one_convolving_the_image_forward_and_backward():
    image = Transformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=16, norm_num_groups=4,
                               cross_attention_dim=12)
    tokens = copy.deepcopy(image)
    project_tokens(tokens)
    assert isinstance(tokens.proj_in, TokenProjection) and tokens.use_linear_projection
    assert {k: v.shape for k, v in tokens.state_dict().items()} == {k: v.shape for k, v in image.state_dict().items()}

    x = torch.randn(3, 16, 4, 5, requires_grad=True)
    text = torch.randn(3, 7, 12)
    out, expected = tokens(x, text).sample, image(x, text).sample
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    grad, x.grad = x.grad.clone(), None
    (expected * upstream).sum().backward()
    torch.testing.assert_close(grad, x.grad, rtol=1e-5, atol=1e-5)
    for name in ("proj_in", "proj_out"):  # a tuned projection gets the convolution's gradients, in its shape
        torch.testing.assert_close(getattr(tokens, name).weight.grad, getattr(image, name).weight.grad,
                                   rtol=1e-5, atol=1e-5)


def test_split_geglu_is_diffusers_geglu_forward_and_backward():
    geglu = GEGLU(8, 16)
    split = SplitGEGLU.replacing(copy.deepcopy(geglu))
    x = torch.randn(2, 5, 8, requires_grad=True)
    out, expected = split(x), geglu(x)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, upstream)
    (expected_grad,) = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-6)
    assert split.state_dict().keys() == geglu.state_dict().keys()
