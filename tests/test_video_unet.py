import copy

import pytest
import torch

from tav.models import DEFAULT_TRAINABLE, inflate_unet, load_trainable, save_trainable, select_trainable
from tav.models.lora import add_lora
from tav.models.presets import sd15_unet, tiny_unet
from tav.models.video_layers import HalfNorm
from tav.train import TrainSettings, apply_speed_settings, cast_weights


def image_unet_per_frame(unet, clip, t, text):
    """Run the image UNet on each frame alone: what the inflated UNet must equal at initialisation."""
    frames = clip.shape[2]
    folded = clip.transpose(1, 2).reshape(-1, *clip.shape[1:2], *clip.shape[3:])
    out = unet(folded, t, text.repeat_interleave(frames, 0)).sample
    return out.reshape(clip.shape[0], frames, *out.shape[1:]).transpose(1, 2)


def test_inflated_unet_starts_as_the_image_model_on_a_still_clip():
    image = tiny_unet()
    video = inflate_unet(copy.deepcopy(image))
    frame = torch.randn(1, 4, 1, 8, 8)
    clip = frame.expand(-1, -1, 5, -1, -1).contiguous()  # identical frames: shared norms and attention see the same
    text = torch.randn(1, 77, 32)
    expected = image_unet_per_frame(image, clip, 10, text)
    torch.testing.assert_close(video(clip, 10, text), expected, rtol=1e-4, atol=1e-4)


def test_single_frame_clip_equals_image_model():
    image = tiny_unet()
    video = inflate_unet(copy.deepcopy(image))
    clip, text = torch.randn(2, 4, 1, 8, 8), torch.randn(2, 77, 32)
    torch.testing.assert_close(video(clip, 500, text), image_unet_per_frame(image, clip, 500, text),
                               rtol=1e-4, atol=1e-4)


def test_every_norm_of_the_video_unet_renders_in_its_half_weights():
    image = tiny_unet()
    keys = set(image.state_dict())
    video = inflate_unet(image)
    norms = [m for m in video.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm))]
    assert norms and all(isinstance(m, HalfNorm) for m in norms)
    assert keys <= set(video.unet.state_dict())  # the base model's weights load under their own names
    clip, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        full_precision = video(clip, 10, text)
    video.to(torch.bfloat16)
    out_dtypes = []
    for norm in norms:
        norm.register_forward_hook(lambda module, args, out: out_dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        rendered = video(clip, 10, text)
    assert out_dtypes == [torch.bfloat16] * len(norms)  # each norm ran once, in its weights' dtype
    torch.testing.assert_close(rendered.float(), full_precision, rtol=0.05, atol=0.05)


def test_a_training_step_with_half_norms_is_about_as_close_to_fp32_as_autocasts_fp32_norms():
    # speed=fast's frozen bf16 weights: the norms train in bf16 too. "autocast" keeps the same (bf16-valued) norm
    # weights in fp32, which autocast normalises in fp32 as the official recipe does on a GPU (CPU autocast would
    # leave diffusers' GroupNorm in bf16; the clip GroupNorms upcast as CUDA's does); "fp32" is no autocast at all.
    # Measured: half 2.7% from fp32, autocast 2.4%, 3.3% apart (analysis/PERF.md round 17).
    torch.manual_seed(0)
    half = inflate_unet(tiny_unet())
    for p in select_trainable(half):
        torch.nn.init.normal_(p, std=0.05)
    apply_speed_settings(half, TrainSettings(mixed_precision="bf16", frozen_dtype="bf16"))
    autocast, fp32 = copy.deepcopy(half), copy.deepcopy(half)
    cast_weights((p for m in autocast.modules() if isinstance(m, HalfNorm) for p in m.parameters()), torch.float32)
    cast_weights(fp32.unet.parameters(), torch.float32)
    clip, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    losses, grads = {}, {}
    for name, model in {"half": half, "autocast": autocast, "fp32": fp32}.items():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name != "fp32"):
            loss = model(clip, 10, text).float().square().mean()
        loss.backward()
        losses[name] = loss.item()
        grads[name] = torch.cat([p.grad.flatten() for p in model.unet.parameters() if p.requires_grad])
    assert losses["half"] == pytest.approx(losses["autocast"], rel=1e-3)
    assert (grads["half"] - grads["autocast"]).norm() < 0.04 * grads["fp32"].norm()
    assert (grads["half"] - grads["fp32"]).norm() <= 1.2 * (grads["autocast"] - grads["fp32"]).norm()


def test_temporal_attention_mixes_frames_once_trained():
    video = inflate_unet(tiny_unet())
    for name, p in video.unet.named_parameters():
        if "attn_temp.to_out" in name:
            torch.nn.init.normal_(p, std=0.5)
    clip, text = torch.randn(1, 4, 4, 8, 8), torch.randn(1, 77, 32)
    changed = clip.clone()
    changed[:, :, 3] += 1.0
    with torch.no_grad():
        delta = (video(clip, 10, text) - video(changed, 10, text))[:, :, 0].abs().max()
    assert delta > 1e-3  # frame 0's output depends on frame 3 only through temporal attention and shared norms


def test_default_trainable_set_counts_official_parameters_at_sd_shape():
    with torch.device("meta"):
        video = inflate_unet(sd15_unet())
    params = select_trainable(video, DEFAULT_TRAINABLE)
    assert sum(p.numel() for p in params) == 74_354_880
    names = [n for n, p in video.unet.named_parameters() if p.requires_grad]
    assert all(any(s in n for s in DEFAULT_TRAINABLE) for n in names)
    assert any(n.startswith("down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q") for n in names)


def test_unknown_trainable_suffix_is_rejected():
    with pytest.raises(ValueError, match=r"\['attn9.to_q'\] match no module.*train.trainable_modules"):
        select_trainable(inflate_unet(tiny_unet()), ["attn1.to_q", "attn9.to_q"])


def test_gradient_checkpointing_reaches_every_trainable_weight():
    # The official recipe's reentrant checkpointing left the down blocks untuned; diffusers' is non-reentrant.
    video = inflate_unet(tiny_unet())
    params = dict((n, p) for n, p in video.unet.named_parameters() if p in set(select_trainable(video)))
    for p in params.values():
        torch.nn.init.normal_(p, std=0.02)
    video.unet.enable_gradient_checkpointing()
    video.train()
    video(torch.randn(1, 4, 3, 8, 8), 10, torch.randn(1, 77, 32)).square().mean().backward()
    no_grad = [n for n, p in params.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not no_grad
    assert any(n.startswith("down_blocks") for n in params)


def test_trainable_weights_round_trip_through_safetensors(tmp_path):
    video = inflate_unet(tiny_unet())
    select_trainable(video)
    for name, p in video.unet.named_parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p)
    path = save_trainable(video, tmp_path / "w.safetensors")
    fresh = inflate_unet(tiny_unet())
    loaded = load_trainable(fresh, path)
    assert loaded and all("to_q" in k or "attn_temp" in k or "norm_temp" in k for k in loaded)
    clip, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(clip, 5, text), video(clip, 5, text))


def test_loading_foreign_weights_names_the_problem(tmp_path):
    from safetensors.torch import save_file

    save_file({"not.a.weight": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="weights this UNet lacks"):
        load_trainable(inflate_unet(tiny_unet()), tmp_path / "w.safetensors")


def test_lora_trains_only_adapters_and_starts_as_the_base():
    base = inflate_unet(tiny_unet())
    video = inflate_unet(tiny_unet())
    params = add_lora(video, DEFAULT_TRAINABLE, rank=4)
    names = [n for n, p in video.unet.named_parameters() if p.requires_grad]
    assert params and all("lora_" in n for n in names)
    assert any("attn_temp.to_k" in n for n in names) and any("attn2.to_q" in n for n in names)
    assert not any("attn2.to_k" in n for n in names)
    clip, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(video(clip, 5, text), base(clip, 5, text))


def test_lora_checkpoint_holds_the_inflated_modules_it_cannot_rebuild(tmp_path):
    # With LoRA the temporal projections are frozen but random: the checkpoint must carry them.
    torch.manual_seed(1)
    video = inflate_unet(tiny_unet())
    add_lora(video, DEFAULT_TRAINABLE, rank=2)
    path = save_trainable(video, tmp_path / "lora.safetensors")
    torch.manual_seed(2)
    fresh = inflate_unet(tiny_unet())
    add_lora(fresh, DEFAULT_TRAINABLE, rank=2)
    load_trainable(fresh, path)
    clip, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(clip, 5, text), video(clip, 5, text))


def test_lora_on_the_feed_forward_projection_reaches_the_output():
    # The GEGLU's split matmuls read its projection's weights directly, so a LoRA-wrapped one must be run as is.
    base = inflate_unet(tiny_unet())
    video = inflate_unet(tiny_unet())
    add_lora(video, ["ff.net.0.proj"], rank=2)
    for name, p in video.unet.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)
    clip, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        assert not torch.allclose(video(clip, 5, text), base(clip, 5, text))


def test_lora_adapts_the_transformers_projections_as_the_convolutions_they_are():
    base = inflate_unet(tiny_unet())
    video = inflate_unet(tiny_unet())
    add_lora(video, ["proj_in", "proj_out"], rank=2)
    assert any("proj_in.lora_A" in n for n, _ in video.unet.named_parameters())
    clip, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(video(clip, 5, text), base(clip, 5, text))
        for name, p in video.unet.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p)
        assert not torch.allclose(video(clip, 5, text), base(clip, 5, text))


def test_lora_on_a_module_it_cannot_adapt_names_the_setting_and_the_fix():
    with pytest.raises(ValueError, match=r"train.trainable_modules=\['norm_temp'\] with train.lora_rank=2: .*"
                                         r"\(train.lora_rank=0\)"):
        add_lora(inflate_unet(tiny_unet()), ["norm_temp"], rank=2)
