import json
import logging
import os

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from original_layout import clip_to_original, to_original, unet_to_original, vae_to_original
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

from tav.models import check_architecture, frozen_on, load_base_model, presets
from tav.models.presets import clip_tokenizer, tiny_text_encoder
from tav.models.single_file import LAYOUT, infer_components
from tav.pipeline import check_prompt_length


def test_tiny_preset_is_offline_random_and_sd_shaped(tiny_model):
    assert tiny_model.random_weights and tiny_model.source == "tiny"
    assert tiny_model.unet.config.in_channels == 4
    assert tiny_model.vae.config.scaling_factor == pytest.approx(0.18215)
    assert tiny_model.scheduler_config["beta_schedule"] == "scaled_linear"


def test_tiny_preset_is_deterministic():
    a, b = load_base_model("tiny"), load_base_model("tiny")
    for (name, pa), pb in zip(a.unet.named_parameters(), b.unet.parameters()):
        assert torch.equal(pa, pb), name


def test_frozen_encoders_cast_to_half_without_diffusers_fp32_warning(caplog):
    """diffusers 0.42's `to(dtype)` warns of modules to keep in float32 on every cast, naming none; every GPU run
    cast its VAE that way and printed it."""
    diffusers_log = logging.getLogger("diffusers")  # it does not propagate to the root logger
    diffusers_log.addHandler(caplog.handler)
    try:
        vae = frozen_on(presets.tiny_vae(), "cpu", torch.bfloat16)
        text_encoder = frozen_on(tiny_text_encoder(), "cpu", torch.float16)
    finally:
        diffusers_log.removeHandler(caplog.handler)
    assert "kept in float32" not in caplog.text
    assert {p.dtype for p in vae.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in text_encoder.parameters()} == {torch.float16}
    assert not any(p.requires_grad for p in (*vae.parameters(), *text_encoder.parameters()))
    assert dict(text_encoder.named_buffers())["embeddings.position_ids"].dtype == torch.long  # integers stay
    assert {p.dtype for p in frozen_on(presets.tiny_vae(), "cpu", None).parameters()} == {torch.float32}


def test_tokenizer_is_stable_diffusions_clip_tokenizer():
    tokenizer = clip_tokenizer()
    assert tokenizer("a clip art illustration of a dog").input_ids == [49406, 320, 9289, 794, 6052, 539, 320, 1929, 49407]
    assert tokenizer.model_max_length == 77


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a diffusers model folder"):
        load_base_model(str(tmp_path / "nowhere"))


def test_missing_single_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; set model.source"):
        load_base_model(str(tmp_path / "style.safetensors"))


def test_uncached_hub_id_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="huggingface-cli download someone/no-such-model"):
        load_base_model("someone/no-such-model")


def test_sdxl_and_inpainting_unets_are_rejected():
    text = tiny_text_encoder()
    small = dict(block_out_channels=(32, 64), cross_attention_dim=32, norm_num_groups=8, layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    sdxl_like = UNet2DConditionModel(**small, addition_embed_type="text_time", addition_time_embed_dim=8,
                                     projection_class_embeddings_input_dim=80)
    with pytest.raises(ValueError, match="unsupported architecture.*SDXL"):
        check_architecture(sdxl_like, text)
    inpainting = UNet2DConditionModel(**small, in_channels=9)
    with pytest.raises(ValueError, match="9 input channels"):
        check_architecture(inpainting, text)


def test_prompt_over_the_tokenizer_length_is_rejected():
    with pytest.raises(ValueError, match=r"is 1\d\d tokens but the tokenizer takes at most 77"):
        check_prompt_length(clip_tokenizer(), "a man is surfing " * 30)


def test_local_diffusers_folder_loads_with_safetensors(tiny_model, tmp_path):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=tiny_model.vae, text_encoder=tiny_model.text_encoder,
                                   tokenizer=tiny_model.tokenizer, unet=tiny_model.unet,
                                   scheduler=DDIMScheduler.from_config(tiny_model.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(tmp_path / "style-model")
    assert list((tmp_path / "style-model" / "unet").glob("*.safetensors"))
    loaded = load_base_model(str(tmp_path / "style-model"))
    assert not loaded.random_weights and loaded.source == str(tmp_path / "style-model")
    for (name, a), b in zip(tiny_model.unet.state_dict().items(), loaded.unet.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded.tokenizer("a dog").input_ids == tiny_model.tokenizer("a dog").input_ids


# --- single files in Stable Diffusion's original layout ---------------------------------------------------


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    """No Hugging Face cache and no network: what a user with only their style file has. huggingface_hub reads
    these variables at import, so its constants are set too (test_export_base runs it as a fresh process)."""
    import huggingface_hub.constants

    cache = str(tmp_path / "empty-hub-cache")
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def write_checkpoint(path, state):
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 470000}, path)  # as Lightning saved SD's .ckpt files
    return path


def tiny_checkpoint(path, dtype=torch.float32, seed=0):
    return write_checkpoint(path, to_original(presets.tiny_unet(seed), presets.tiny_vae(seed),
                                              presets.tiny_text_encoder(seed), dtype))


def assert_same_outputs(loaded, reference):
    """The UNet, VAE and text encoder compute what the reference's do (fp32, bit for bit)."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 8, 8, generator=generator)
    image = torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1
    ids = reference.tokenizer(["a cat in clip art style"], padding="max_length", max_length=77,
                              return_tensors="pt").input_ids
    prompt = "a cat in clip art style"
    assert loaded.tokenizer(prompt).input_ids == reference.tokenizer(prompt).input_ids
    with torch.no_grad():
        text = reference.text_encoder(ids)[0]
        torch.testing.assert_close(loaded.text_encoder(ids)[0], text, rtol=0, atol=0)
        torch.testing.assert_close(loaded.unet(latents, 10, text.expand(2, -1, -1)).sample,
                                   reference.unet(latents, 10, text.expand(2, -1, -1)).sample, rtol=0, atol=0)
        def vae_outputs(vae):
            return vae.encode(image).latent_dist.mean, vae.decode(latents).sample

        torch.testing.assert_close(vae_outputs(loaded.vae), vae_outputs(reference.vae), rtol=0, atol=0)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_original_layout_file_loads_offline_with_no_config_as_the_model_it_came_from(suffix, tiny_model, tmp_path,
                                                                                   empty_hub_cache):
    path = tiny_checkpoint(tmp_path / f"style{suffix}")
    loaded = load_base_model(str(path))
    assert loaded.source == str(path) and not loaded.random_weights and loaded.style_loras == []
    assert loaded.scheduler_config["beta_schedule"] == "scaled_linear"
    assert loaded.scheduler_config["prediction_type"] == "epsilon"
    assert_same_outputs(loaded, tiny_model)


def test_fp16_file_loads_in_fp32_with_its_rounded_weights(tiny_model, tmp_path, empty_hub_cache):
    loaded = load_base_model(str(tiny_checkpoint(tmp_path / "style-fp16.safetensors", torch.float16)))
    for module in (loaded.unet, loaded.vae, loaded.text_encoder):
        assert all(p.dtype == torch.float32 for p in module.parameters())
    for name, tensor in tiny_model.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], tensor.half().float(), rtol=0, atol=0, msg=name)


def test_file_with_ema_weights_loads_the_ema_weights(tmp_path, empty_hub_cache):
    state = to_original(presets.tiny_unet(), presets.tiny_vae(), presets.tiny_text_encoder())
    ema = unet_to_original(presets.tiny_unet(seed=1))  # the EMA copy, flat-named as SD's training saved it
    state.update({"model_ema." + "".join(k.split(".")[1:]): v for k, v in ema.items()})
    loaded = load_base_model(str(write_checkpoint(tmp_path / "v1-5-pruned.safetensors", state)))
    for name, tensor in presets.tiny_unet(seed=1).state_dict().items():
        assert torch.equal(loaded.unet.state_dict()[name], tensor), name


def test_v_prediction_marker_sets_the_schedulers_prediction_type(tmp_path, empty_hub_cache):
    state = {**to_original(presets.tiny_unet(), presets.tiny_vae(), presets.tiny_text_encoder()),
             "v_pred": torch.tensor([])}
    loaded = load_base_model(str(write_checkpoint(tmp_path / "style-vpred.safetensors", state)))
    assert loaded.scheduler_config["prediction_type"] == "v_prediction"


def test_ckpt_that_carries_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "style.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "callback": Payload()}, path)
    with pytest.raises(ValueError, match=r"holds pickled code.*(system).*use the model's .safetensors") as error:
        load_base_model(str(path))
    assert "\n" not in str(error.value) and not marker.exists()


@pytest.mark.parametrize("change, named", [
    (lambda s: s.update({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(32, 9, 3, 3)}), "inpainting"),
    (lambda s: s.update({"conditioner.embedders.1.model.positional_embedding": torch.zeros(77, 32),
                         "model.diffusion_model.label_emb.0.0.weight": torch.zeros(32, 8)}), "SDXL"),
    (lambda s: s.update({"cond_stage_model.model.token_embedding.weight": torch.zeros(49408, 32)}), "SD-2.x"),
])
def test_sdxl_sd2_and_inpainting_files_are_named_and_refused_in_one_line(change, named, tiny_model, tmp_path):
    state = to_original(tiny_model.unet, tiny_model.vae, tiny_model.text_encoder)
    change(state)
    path = write_checkpoint(tmp_path / "other.safetensors", state)
    with pytest.raises(ValueError, match=f"unsupported architecture: .* is an? {named}.*out of scope") as error:
        load_base_model(str(path))
    assert "\n" not in str(error.value)


def test_lora_given_as_the_model_says_to_use_style_loras(tmp_path):
    path = write_checkpoint(tmp_path / "style-lora.safetensors", {"lora_unet_x.lora_down.weight": torch.zeros(1, 1)})
    with pytest.raises(ValueError, match=r"is a LoRA, not a whole model: give it as model.style_loras"):
        load_base_model(str(path))


def _listed(value):
    return list(value) if isinstance(value, tuple) else value


def test_sizes_inferred_from_an_sd15_shaped_file_are_the_bundled_sd1_layout():
    """What the loader infers from SD-1.5's tensor shapes is exactly SD-1.5's config, so a real SD-1.x file
    loads into the bundled layout unchanged (built on the meta device: 1 GB of weights are not needed)."""
    clip_l = CLIPTextConfig(**json.loads((LAYOUT / "text_encoder" / "config.json").read_text()))
    with torch.device("meta"):
        state = {**unet_to_original(presets.sd15_unet()), **vae_to_original(presets.sd15_vae()),
                 **clip_to_original(CLIPTextModel(clip_l))}
    inferred = infer_components({k: tuple(v.shape) for k, v in state.items()})
    with torch.device("meta"):
        bundled = {"unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(LAYOUT / "unet")).config,
                   "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(LAYOUT / "vae")).config,
                   "text_encoder": vars(clip_l)}
    for subfolder, values in inferred.items():
        assert {k: _listed(bundled[subfolder][k]) for k in values} == values, subfolder
    assert inferred["unet"]["block_out_channels"] == list(presets.SD15_UNET["block_out_channels"])
    assert inferred["vae"]["block_out_channels"] == list(presets.SD15_VAE["block_out_channels"])


def test_model_config_overrides_the_bundled_layout(tiny_model, tmp_path, empty_hub_cache):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    layout = tmp_path / "layout"
    StableDiffusionPipeline(vae=tiny_model.vae, text_encoder=tiny_model.text_encoder, tokenizer=tiny_model.tokenizer,
                            unet=tiny_model.unet, scheduler=DDIMScheduler.from_config(tiny_model.scheduler_config),
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(layout)
    path = tiny_checkpoint(tmp_path / "style.safetensors")
    loaded = load_base_model(str(path), config=str(layout))
    assert loaded.scheduler_config["_class_name"] == "DDIMScheduler"
    assert_same_outputs(loaded, tiny_model)
    with pytest.raises(FileNotFoundError, match="model.config='someone/sd15-layout' is neither a local folder nor"):
        load_base_model(str(path), config="someone/sd15-layout")


def test_file_missing_a_tensor_names_it(tiny_model, tmp_path):
    state = to_original(tiny_model.unet, tiny_model.vae, tiny_model.text_encoder)
    del state["model.diffusion_model.out.2.weight"]
    with pytest.raises(ValueError, match=r"cannot read the model's sizes from .* \(no tensor 'out.2.weight'\)"):
        load_base_model(str(write_checkpoint(tmp_path / "cut.safetensors", state)))
