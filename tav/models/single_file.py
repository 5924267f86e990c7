"""Single-file checkpoints in Stable Diffusion's original layout (`model.diffusion_model.*`, `first_stage_model.*`,
`cond_stage_model.transformer.*`), loaded offline through diffusers' `from_single_file`.

The file is read without running code (safetensors, or a .ckpt through torch's weights-only unpickler) and
recognised from its keys and shapes before anything is built: SD-1.x loads; SDXL, SD-2.x, inpainting and
instruct-pix2pix files are named and refused in one line. The diffusers layout it loads into is SD-1.x's,
shipped with the package (sd1_layout/, the tokenizer rebuilt from open_clip's vocabulary), with the component
sizes the tensors show (widths, depths, context width) written over it; what tensors cannot show (attention
heads, norm groups) is SD-1.x's, which the original format fixes.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open

from tav.models import presets

log = logging.getLogger(__name__)

LAYOUT = Path(__file__).parent / "sd1_layout"
UNET, VAE, CLIP = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
SUPPORTED = "use a Stable Diffusion 1.x checkpoint (SD-1.4/1.5 or a fine-tune of them)"
# diffusers' own threshold for a file that carries an EMA copy of the UNet (convert_ldm_unet_checkpoint).
_EMA_KEYS = 100
# ComfyUI's marker for a v-prediction SD-1.x checkpoint: a tensor named "v_pred".
_V_PRED_KEY = "v_pred"


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, read without running code; a .ckpt that needs code to load is refused."""
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own SafetensorError for a damaged header
            raise ValueError(f"{path} is not a readable .safetensors file ({error}); check the download") from None
    try:
        # weights_only: torch's restricted unpickler, which refuses any global a tensor file does not need.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f"it asks for {found.group(1)}" if found else "it needs more than tensors to unpickle"
        raise ValueError(f"{path} holds pickled code, not only tensors ({what}); refused, as loading it would run "
                         "that code: use the model's .safetensors release instead") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"{path} is not a readable .ckpt file ({str(error).splitlines()[0]}); check the "
                         "download") from None
    while isinstance(checkpoint, dict) and "state_dict" in checkpoint:  # Lightning nests the weights
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a state dict of tensors")
    return {key: tuple(value.shape) for key, value in checkpoint.items() if isinstance(value, torch.Tensor)}


def check_sd1(shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """Raise a one-line ValueError naming what the file is unless it is an SD-1.x checkpoint in original layout."""
    keys = shapes.keys()
    unet = {k[len(UNET):]: v for k, v in shapes.items() if k.startswith(UNET)}
    problem = None
    if any(k.startswith("conditioner.embedders.") for k in keys) or "label_emb.0.0.weight" in unet:
        problem = "an SDXL checkpoint (two text encoders, added size/crop embeddings)"
    elif any(k.startswith("cond_stage_model.model.") for k in keys) or _cross_attention_width(unet) == 1024:
        problem = ("an SD-2.x checkpoint (OpenCLIP text encoder, 1024-wide cross-attention; "
                   "its 768px models predict v)")
    elif "input_blocks.0.0.weight" in unet and unet["input_blocks.0.0.weight"][1] != 4:
        channels = unet["input_blocks.0.0.weight"][1]
        kind = {9: "an inpainting", 8: "an instruct-pix2pix"}.get(channels, "a non-text-to-image")
        problem = f"{kind} checkpoint (its UNet takes {channels} input channels, not 4)"
    elif not unet:
        if any(k.startswith(("lora_unet_", "lora_te_", "unet.", "text_encoder.")) and "lora" in k for k in keys):
            raise ValueError(f"{path} is a LoRA, not a whole model: give it as "
                             f"model.style_loras=[{{path: {path}, scale: 1.0}}] on a base model")
        problem = "not a Stable Diffusion checkpoint in the original layout (no model.diffusion_model.* tensors)"
    if problem is None:
        missing = [name for name, prefix in (("VAE", VAE), ("CLIP text encoder", CLIP))
                   if not any(k.startswith(prefix) for k in keys)]
        if missing:
            problem = f"a checkpoint without its {' or '.join(missing)} (only whole SD-1.x checkpoints load)"
    if problem:
        raise ValueError(f"unsupported architecture: {path} is {problem}; SDXL, SD-2.x and inpainting models are "
                         f"out of scope: {SUPPORTED}")


def _cross_attention_width(unet: dict[str, tuple[int, ...]]) -> int | None:
    widths = [shape[1] for key, shape in unet.items() if key.endswith("attn2.to_k.weight")]
    return widths[0] if widths else None


def infer_components(shapes: dict[str, tuple[int, ...]]) -> dict[str, dict]:
    """The component config values the tensors show (UNet, VAE and CLIP sizes), keyed by layout subfolder."""
    unet = {k[len(UNET):]: v for k, v in shapes.items() if k.startswith(UNET)}
    vae = {k[len(VAE):]: v for k, v in shapes.items() if k.startswith(VAE)}
    clip = {k[len(CLIP):].removeprefix("text_model."): v for k, v in shapes.items() if k.startswith(CLIP)}
    return {"unet": _unet_config(unet), "vae": _vae_config(vae), "text_encoder": _clip_config(clip)}


def _indices(shapes: dict, prefix: str) -> list[int]:
    """The sorted block numbers n of keys `prefix.n.*`."""
    return sorted({int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)})


def _unet_config(unet: dict[str, tuple[int, ...]]) -> dict:
    # input_blocks: 0 is conv_in; each level has `layers` (resnet[, transformer]) blocks, then a downsampler
    # (an `op` conv) on every level but the last.
    blocks = _indices(unet, "input_blocks.")[1:]
    downsamplers = [i for i in blocks if f"input_blocks.{i}.0.op.weight" in unet]
    levels = len(downsamplers) + 1
    layers = (len(blocks) - len(downsamplers)) // levels
    first = [1 + level * (layers + 1) for level in range(levels)]
    widths = [unet[f"input_blocks.{i}.0.out_layers.3.weight"][0] for i in first]
    down_attention = [f"input_blocks.{i}.1.proj_in.weight" in unet for i in first]
    up_attention = [f"output_blocks.{level * (layers + 1)}.1.proj_in.weight" in unet for level in range(levels)]
    attention = next(k for k in unet if k.endswith(".proj_in.weight"))
    depth = len(_indices(unet, attention.replace("proj_in.weight", "transformer_blocks.")))
    return {"in_channels": unet["input_blocks.0.0.weight"][1], "out_channels": unet["out.2.weight"][0],
            "block_out_channels": widths, "layers_per_block": layers,
            "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in down_attention],
            "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attention],
            "cross_attention_dim": _cross_attention_width(unet), "transformer_layers_per_block": depth,
            "use_linear_projection": len(unet[attention]) == 2}


def _vae_config(vae: dict[str, tuple[int, ...]]) -> dict:
    levels = _indices(vae, "encoder.down.")
    return {"in_channels": vae["encoder.conv_in.weight"][1], "out_channels": vae["decoder.conv_out.weight"][0],
            "latent_channels": vae["encoder.conv_out.weight"][0] // 2,  # the encoder emits mean and log-variance
            "block_out_channels": [vae[f"encoder.down.{i}.block.0.conv2.weight"][0] for i in levels],
            "layers_per_block": len(_indices(vae, "encoder.down.0.block.")),
            "down_block_types": ["DownEncoderBlock2D"] * len(levels),
            "up_block_types": ["UpDecoderBlock2D"] * len(levels)}


def _clip_config(clip: dict[str, tuple[int, ...]]) -> dict:
    vocab, hidden = clip["embeddings.token_embedding.weight"]
    return {"vocab_size": vocab, "hidden_size": hidden,
            "max_position_embeddings": clip["embeddings.position_embedding.weight"][0],
            "num_hidden_layers": len(_indices(clip, "encoder.layers.")),
            "intermediate_size": clip["encoder.layers.0.mlp.fc1.weight"][0],
            "num_attention_heads": max(1, hidden // 64)}  # CLIP-L's heads are 64 channels wide


def write_layout(folder: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """SD-1.x's diffusers layout in `folder`, with the sizes `shapes` shows and the CLIP tokenizer files."""
    shutil.copytree(LAYOUT, folder, dirs_exist_ok=True)
    for subfolder, values in infer_components(shapes).items():
        config_path = folder / subfolder / "config.json"
        config = json.loads(config_path.read_text())
        changed = {k: v for k, v in values.items() if config.get(k) != v}
        if changed:
            log.info("%s: sizes from the file differ from SD-1.x's: %s", subfolder, changed)
        config_path.write_text(json.dumps({**config, **values}, indent=2))
    if _V_PRED_KEY in shapes:
        scheduler_path = folder / "scheduler" / "scheduler_config.json"
        scheduler = json.loads(scheduler_path.read_text())
        scheduler_path.write_text(json.dumps({**scheduler, "prediction_type": "v_prediction"}, indent=2))
    presets.clip_tokenizer().save_pretrained(folder / "tokenizer")
    return folder


def local_layout(config: str) -> str:
    """`model.config` as a local folder: itself, or a hub id's snapshot in the local cache (never downloaded)."""
    if Path(config).expanduser().is_dir():
        return str(Path(config).expanduser())
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(config, local_files_only=True,
                                 allow_patterns=["*.json", "*.txt", "**/*.json", "**/*.txt"])
    except (LocalEntryNotFoundError, ValueError, OSError) as error:
        raise FileNotFoundError(f"model.config='{config}' is neither a local folder nor a hub id in the local Hugging "
                                f"Face cache ({type(error).__name__}); leave model.config null to use the bundled "
                                "SD-1.x layout, or download it first with `huggingface-cli download "
                                f"{config} --exclude '*.safetensors' '*.bin' '*.ckpt'`") from None


def load_single_file(path: Path, config: str | None = None) -> StableDiffusionPipeline:
    """An SD-1.x pipeline (fp32) from one original-layout file, in SD-1.x's layout or in `config`'s."""
    shapes = read_shapes(path)
    check_sd1(shapes, path)
    ema = sum(k.startswith("model_ema.") for k in shapes) > _EMA_KEYS
    if ema:
        log.info("%s holds EMA weights: loading them (the weights SD releases are used with)", path.name)
    with tempfile.TemporaryDirectory(prefix="tav-sd1-layout-") as tmp:
        try:
            layout = local_layout(config) if config else str(write_layout(Path(tmp), shapes))
        except (KeyError, StopIteration, IndexError) as error:
            raise ValueError(f"cannot read the model's sizes from {path} (no tensor {error}); it is not a whole SD-1.x "
                             "checkpoint: set model.config to the diffusers layout it follows") from None
        try:
            pipe = StableDiffusionPipeline.from_single_file(
                str(path), config=layout, local_files_only=True, extract_ema=ema, safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            where, fix = ((f"layout '{config}'", " and that model.config matches it") if config
                          else ("the bundled SD-1.x layout", ""))
            raise ValueError(f"cannot load {path} with {where} ({str(error).splitlines()[0]}); check that the "
                             f"file is an SD-1.x checkpoint{fix}") from None
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        # fp16/bf16 files load as fp32, the precision tuning starts from; nn.Module.to, not diffusers' override,
        # which warns about keep-in-fp32 modules these models do not have.
        torch.nn.Module.to(module, torch.float32)
    return pipe
