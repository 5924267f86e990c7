import pytest
import torch

from tav import pipeline
from tav.models import inflate_unet


def test_initial_latents_blend_inversion_and_seeded_noise():
    inverted = torch.randn(1, 4, 3, 8, 8)
    assert torch.equal(pipeline.initial_latents(inverted, 1, 0.0), inverted)
    a, b = pipeline.initial_latents(inverted, 1, 0.3), pipeline.initial_latents(inverted, 1, 0.3)
    assert torch.equal(a, b)
    assert not torch.equal(a, pipeline.initial_latents(inverted, 2, 0.3))
    noise = pipeline.initial_latents(inverted, 1, 1.0)
    assert abs(torch.corrcoef(torch.stack([noise.flatten(), inverted.flatten()]))[0, 1]) < 0.1
    big = torch.randn(1, 4, 8, 32, 32)
    assert pipeline.initial_latents(big, 3, 0.5).std() == pytest.approx(1.0, abs=0.05)  # unit variance kept
    with pytest.raises(ValueError, match=r"noise_mix must be in \[0, 1\]"):
        pipeline.initial_latents(inverted, 1, 1.5)


def test_clip_encodes_and_decodes_at_vae_scale(tiny_model):
    frames = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    latents = pipeline.encode_clip(tiny_model.vae, frames)
    assert latents.shape == (1, 4, 3, 4, 4)
    decoded = pipeline.decode_latents(tiny_model.vae, latents.expand(2, -1, -1, -1, -1))
    assert decoded.shape == (2, 3, 32, 32, 3) and decoded.dtype == torch.uint8


def test_inversion_and_sampling_are_deterministic_and_shape_preserving(tiny_model):
    video = inflate_unet(tiny_model.unet)
    latents, text = torch.randn(1, 4, 3, 8, 8), torch.randn(2, 77, 32)
    empty = torch.randn(1, 77, 32)
    inverted = pipeline.ddim_invert(video, latents, empty, tiny_model.scheduler_config, steps=4)
    assert inverted.shape == latents.shape and not torch.equal(inverted, latents)
    start = inverted.expand(2, -1, -1, -1, -1)
    a = pipeline.sample(video, start, text, empty, tiny_model.scheduler_config, steps=4, guidance_scale=7.5)
    b = pipeline.sample(video, start, text, empty, tiny_model.scheduler_config, steps=4, guidance_scale=7.5)
    assert a.shape == (2, 4, 3, 8, 8) and torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # each clip of the batch follows its own prompt


def test_prompts_encode_to_77_tokens(tiny_model):
    embeddings = pipeline.encode_prompts(tiny_model.tokenizer, tiny_model.text_encoder, ["a", ""], torch.device("cpu"))
    assert embeddings.shape == (2, 77, 32)


@pytest.mark.parametrize("render", ["inversion", "sampling"])
def test_inversion_and_sampling_run_eager_even_when_the_unet_is_compiled(tiny_model, render):
    """Compiling them cost ~60 s each on a cold GPU for no faster steps (analysis/PERF.md rounds 5 and 24), and a
    clip rendered eagerly in a compiled run is the clip an export renders."""
    from tav.train import TrainSettings, apply_speed_settings

    video = inflate_unet(tiny_model.unet)
    apply_speed_settings(video, TrainSettings(compile=True, compile_mode="regional"))
    tracing = []
    block = video.unet.down_blocks[0].attentions[0].transformer_blocks[0]
    block.register_forward_pre_hook(lambda module, args: tracing.append(torch.compiler.is_compiling()))
    latents, empty = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    if render == "inversion":
        pipeline.ddim_invert(video, latents, empty, tiny_model.scheduler_config, 3)
    else:
        pipeline.sample(video, latents, torch.randn(1, 77, 32), empty, tiny_model.scheduler_config, 3, 7.5)
    assert tracing == [False, False, False]  # called each step, never traced


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs exist only with a GPU")
def test_sampling_and_inversion_steps_never_wait_for_the_gpu(tiny_model):
    """A step that waits leaves the GPU idle while the host launches the next one (diffusers' DDIM schedulers
    index host tables with the timestep, so a device timestep there waits every step)."""
    video = inflate_unet(tiny_model.unet).cuda()
    latents, text, empty = (torch.randn(shape, device="cuda") for shape in [(1, 4, 3, 8, 8), (2, 77, 32), (1, 77, 32)])
    torch.cuda.set_sync_debug_mode("error")
    try:
        inverted = pipeline.ddim_invert(video, latents, empty, tiny_model.scheduler_config, steps=4)
        pipeline.sample(video, inverted.expand(2, -1, -1, -1, -1), text, empty, tiny_model.scheduler_config,
                        steps=4, guidance_scale=7.5)
    finally:
        torch.cuda.set_sync_debug_mode("default")
