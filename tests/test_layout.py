import torch
from torch import nn

from tav import pipeline
from tav.models import inflate_unet, layout, load_base_model
from tav.models.presets import tiny_unet, tiny_vae
from tav.models.video_layers import HalfGroupNorm, TokenTransformer2DModel, is_channels_last
from tav.train import TrainSettings, tune
from tav.validation import ValidationSettings


def conv_weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]


def test_a_unet_and_vae_render_channels_last_as_they_do_channels_first():
    torch.manual_seed(0)
    video, vae = inflate_unet(tiny_unet()).eval(), tiny_vae().eval()
    layout.normalise_in_layout(vae)  # as load_base_model does
    assert any(isinstance(m, TokenTransformer2DModel) for m in video.modules())
    sample, text = torch.randn(2, 4, 3, 16, 16), torch.randn(2, 77, video.unet.config.cross_attention_dim)
    with torch.no_grad():
        expected_noise, expected_pixels = video(sample, 500, text), pipeline.decode_latents(vae, sample)
        with layout.channels_last(video, vae):
            assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                       for w in conv_weights(video) + conv_weights(vae))
            with layout.channels_last(video, vae):  # nested: converts nothing, restores nothing
                pass
            assert layout.holds_channels_last(video) and layout.holds_channels_last(vae)
            norms = [m for m in [*video.modules(), *vae.modules()] if isinstance(m, HalfGroupNorm)]
            hooks = [m.register_forward_hook(lambda m, args, out: normalised.append(is_channels_last(out)))
                     for m in norms]
            normalised = []
            noise, pixels = video(sample, 500, text), pipeline.decode_latents(vae, sample)
            for hook in hooks:
                hook.remove()
    # every norm that ran met and left NHWC activations: no layout copy between convolutions, transformers included
    assert len(normalised) > 20 and all(normalised)
    torch.testing.assert_close(noise, expected_noise, rtol=1e-4, atol=1e-4)
    assert (pixels.int() - expected_pixels.int()).abs().max() <= 1  # uint8 pixels: at most a rounding apart
    assert all(w.is_contiguous() for w in conv_weights(video) + conv_weights(vae))  # channels-first again
    assert not any(type(m) is nn.GroupNorm for m in load_base_model("tiny").vae.modules())


def test_an_eager_run_validates_channels_last_and_trains_channels_first(tmp_path, monkeypatch):
    """Validation renders in channels-last (the measured speed-up); the training steps between keep the
    channels-first layout ClipGroupNorm's backward is written for."""
    sampled, trained = [], []
    sample = pipeline.sample

    def recording_sample(video_unet, *args, **kwargs):
        sampled.append(layout.holds_channels_last(video_unet))
        return sample(video_unet, *args, **kwargs)

    monkeypatch.setattr(pipeline, "sample", recording_sample)
    model = load_base_model("tiny")
    frames = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    settings = TrainSettings(max_steps=4, learning_rate=1e-3, device="cpu")
    validation = ValidationSettings(prompts=["a blue ball"], every_n_steps=2, inversion_steps=2, sampling_steps=2)
    result = tune(model, frames, "a red ball", settings, validation, tmp_path,
                  step_callbacks=[lambda step, loss, rate: trained.append(layout.holds_channels_last(model.unet))])
    assert len(result.validations) == 2 and sampled == [True, True]
    assert len(trained) == 4 and not any(trained)
    assert all(w.is_contiguous() for w in conv_weights(model.unet))
