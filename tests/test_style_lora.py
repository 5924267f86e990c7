"""Style LoRAs fused into the base model: diffusers/peft and kohya/A1111 files, exact deltas, config and sweeps."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution
from safetensors.torch import save_file

from sweeps.space import parse_search_space
from tav.models import load_base_model
from tav.models.style_lora import file_sha256

ROOT = Path(__file__).resolve().parents[1]
RANK = 2
# Attention projections of the UNet (self and cross) and of the text encoder, as style LoRAs target them.
UNET_LAYERS = {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": (32, 32),
               "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0": (32, 32),
               "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k": (32, 32)}
TEXT_LAYERS = {"encoder.layers.1.self_attn.q_proj": (32, 32), "encoder.layers.1.self_attn.out_proj": (32, 32)}


def low_rank(shape: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(down, up): down is rank x in, up is out x rank, as both formats store them."""
    generator = torch.Generator().manual_seed(seed)
    out_features, in_features = shape
    return torch.randn(RANK, in_features, generator=generator), torch.randn(out_features, RANK, generator=generator)


def write_diffusers_lora(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A diffusers/peft LoRA (lora_A/lora_B, alpha = rank); returns each layer's delta at scale 1."""
    state, deltas = {}, {}
    for index, (layer, shape) in enumerate(UNET_LAYERS.items()):
        down, up = low_rank(shape, seed + index)
        state |= {f"unet.{layer}.lora_A.weight": down, f"unet.{layer}.lora_B.weight": up}
        deltas[f"unet.{layer}.weight"] = up @ down
    save_file(state, str(path))
    return deltas


def write_kohya_lora(path: Path, alpha: float = 1.0, seed: int = 10) -> dict[str, torch.Tensor]:
    """A kohya/A1111 LoRA (lora_down/lora_up/alpha, underscore names, UNet and text encoder); returns the deltas
    at scale 1: alpha / rank * up @ down."""
    state, deltas = {}, {}
    layers = [(f"lora_unet_{layer.replace('.', '_')}", f"unet.{layer}", shape) for layer, shape in UNET_LAYERS.items()]
    layers += [(f"lora_te_text_model_{layer.replace('.', '_')}", f"text_encoder.{layer}", shape)
               for layer, shape in TEXT_LAYERS.items()]
    for index, (name, target, shape) in enumerate(layers):
        down, up = low_rank(shape, seed + index)
        state |= {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(alpha)}
        deltas[f"{target}.weight"] = alpha / RANK * up @ down
    save_file(state, str(path))
    return deltas


def weights(model) -> dict[str, torch.Tensor]:
    return {**{f"unet.{k}": v for k, v in model.unet.state_dict().items()},
            **{f"text_encoder.{k.removeprefix('text_model.')}": v for k, v in model.text_encoder.state_dict().items()}}


def assert_changed_by(styled, base, deltas: dict[str, torch.Tensor]) -> None:
    """Every weight in `deltas` moved by exactly its delta (up to fp32 rounding); every other weight is unchanged."""
    after, before = weights(styled), weights(base)
    assert after.keys() == before.keys()  # fused and unloaded: no adapter left behind
    for name, tensor in before.items():
        if name in deltas:
            torch.testing.assert_close(after[name] - tensor, deltas[name], rtol=1e-5, atol=1e-5, msg=name)
        else:
            assert torch.equal(after[name], tensor), name


@pytest.mark.parametrize("scale", [0.8, 1.5])
def test_diffusers_format_lora_changes_the_unet_by_scale_times_its_delta(scale, tiny_model, tmp_path):
    deltas = write_diffusers_lora(tmp_path / "style.safetensors")
    styled = load_base_model("tiny", style_loras=[{"path": str(tmp_path / "style.safetensors"), "scale": scale}])
    assert_changed_by(styled, tiny_model, {k: scale * v for k, v in deltas.items()})
    assert styled.style_loras == [{"path": str(tmp_path / "style.safetensors"), "scale": scale,
                                   "sha256": file_sha256(tmp_path / "style.safetensors")}]


def test_kohya_format_lora_changes_unet_and_text_encoder_by_scale_alpha_over_rank(tiny_model, tmp_path):
    deltas = write_kohya_lora(tmp_path / "style_kohya.safetensors", alpha=1.0)
    styled = load_base_model("tiny", style_loras=[{"path": str(tmp_path / "style_kohya.safetensors"), "scale": 0.6}])
    assert_changed_by(styled, tiny_model, {k: 0.6 * v for k, v in deltas.items()})


def test_several_loras_add_up_in_order(tiny_model, tmp_path):
    first = write_diffusers_lora(tmp_path / "a.safetensors")
    second = write_kohya_lora(tmp_path / "b.safetensors", alpha=4.0)
    styled = load_base_model("tiny", style_loras=[{"path": str(tmp_path / "a.safetensors"), "scale": 0.5},
                                                  {"path": str(tmp_path / "b.safetensors"), "scale": 0.25}])
    summed = {k: 0.5 * first.get(k, 0) + 0.25 * second.get(k, 0) for k in first.keys() | second.keys()}
    assert_changed_by(styled, tiny_model, summed)
    assert [lora["scale"] for lora in styled.style_loras] == [0.5, 0.25]


def test_bad_lora_entries_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model.style_loras.0.path=.*nowhere.safetensors is not an existing"):
        load_base_model("tiny", style_loras=[{"path": str(tmp_path / "nowhere.safetensors"), "scale": 1.0}])
    write_diffusers_lora(tmp_path / "style.safetensors")
    with pytest.raises(ValueError, match=r"model.style_loras.0.scale='high' is not a number"):
        load_base_model("tiny", style_loras=[{"path": str(tmp_path / "style.safetensors"), "scale": "high"}])
    save_file({"unet.no_such_block.to_q.lora_A.weight": torch.zeros(2, 8),
               "unet.no_such_block.to_q.lora_B.weight": torch.zeros(8, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match=r"model.style_loras.0.path=.*other.safetensors .*SD-1.x"):
        load_base_model("tiny", style_loras=[{"path": str(tmp_path / "other.safetensors")}])


def test_a_lora_scale_is_a_search_dimension_that_composes(tmp_path):
    write_diffusers_lora(tmp_path / "style.safetensors")
    space = parse_search_space({"model.style_loras.0.scale": "interval(0.4, 1.0)"})
    assert space.distributions == {"model.style_loras.0.scale": FloatDistribution(0.4, 1.0)}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            f"model.style_loras=[{{path: {tmp_path / 'style.safetensors'}, scale: 0.8}}]",
            *space.overrides({"model.style_loras.0.scale": 0.55})])
    assert list(cfg.model.style_loras) == [{"path": str(tmp_path / "style.safetensors"), "scale": 0.55}]
    assert OmegaConf.select(cfg, "model.style_loras.0.scale") == 0.55  # how the sweeper checks a searched key exists

