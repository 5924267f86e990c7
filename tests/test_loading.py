import pytest
import torch
from diffusers import UNet2DConditionModel

from tav.models import check_architecture, load_base_model
from tav.models.presets import clip_tokenizer, tiny_text_encoder
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


def test_single_file_needs_its_layout(tmp_path):
    path = tmp_path / "style.safetensors"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="set model.config"):
        load_base_model(str(path))


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
