import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from tav.models import attention_kernels, presets
from tav.models.video_unet import inflate_unet


class AttentionCalls(TorchFunctionMode):
    """Records each scaled_dot_product_attention call as its inputs' shapes, strides, dtype and grad mode."""

    def __init__(self):
        super().__init__()
        self.seen: set[tuple] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            self.seen.add((torch.is_grad_enabled(), args[0].dtype,
                           *((tuple(x.shape), x.stride()) for x in args[:3])))
        return func(*args, **(kwargs or {}))


def tiny_video_unet():
    torch.manual_seed(0)
    return inflate_unet(presets.tiny_unet())


def test_building_ahead_calls_every_attention_the_video_unet_runs_in_training_and_rendering():
    video_unet = tiny_video_unet()
    frames, size = 3, (10, 7)  # a latent width the downsampling rounds up
    latents = torch.randn(1, 4, frames, *size)
    text = torch.randn(1, 77, video_unet.unet.config.cross_attention_dim)
    run = AttentionCalls()
    with run, torch.autocast("cpu", dtype=torch.bfloat16):
        video_unet(latents, 10, text).float().square().mean().backward()
        with torch.no_grad():
            video_unet(latents, 10, text)
    built = AttentionCalls()
    with built:
        attention_kernels.build(video_unet, size, frames, 77, torch.bfloat16, training=True)

    assert built.seen == run.seen
    assert {grad for grad, *_ in built.seen} == {True, False}


def test_building_ahead_leaves_the_weights_their_gradients_and_the_random_stream_alone():
    video_unet = tiny_video_unet()
    weights = {name: p.detach().clone() for name, p in video_unet.named_parameters()}
    state = torch.get_rng_state()

    attention_kernels.build(video_unet, (8, 8), 4, 77, torch.bfloat16, training=True)

    assert all(p.grad is None for p in video_unet.parameters())
    assert all(torch.equal(p, weights[name]) for name, p in video_unet.named_parameters())
    assert torch.equal(torch.get_rng_state(), state)


def test_nothing_is_built_where_cudnn_would_not_build_it():
    video_unet = tiny_video_unet()  # on the CPU
    assert attention_kernels.start_building(video_unet, (8, 8), 4, 77, torch.bfloat16, training=True) is None
