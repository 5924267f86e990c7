"""Style LoRAs: fused into the base model before inflation, so tuning starts from the styled model.

A style LoRA file is applied through diffusers' LoRA loaders (`load_lora_weights`, which reads the diffusers/peft
format and kohya/A1111's `lora_unet_*`/`lora_te_*` format), fused at its scale and unloaded, leaving plain
weights: W + scale * (alpha / rank) * up @ down, in the UNet and, where the file has them, the text encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from diffusers import StableDiffusionPipeline

from tav.config_schema import check_weight_file
from tav.digests import file_sha256


def check_style_loras(style_loras: Sequence[Mapping] | None) -> list[dict]:
    """The configured LoRAs as [{path, scale}], or a one-line error naming the bad entry and the fix."""
    checked = []
    for index, lora in enumerate(style_loras or ()):
        key = f"model.style_loras.{index}"
        if not isinstance(lora, Mapping) or "path" not in lora:
            raise ValueError(f"{key}={lora!r} needs a path: write model.style_loras=[{{path: /loras/style.safetensors, "
                             "scale: 0.8}]")
        path = Path(str(lora["path"])).expanduser()
        if path.suffix != ".safetensors" or not path.is_file():
            raise FileNotFoundError(f"{key}.path={path} is not an existing .safetensors file; point it at the LoRA "
                                    "file (diffusers/peft or kohya/A1111 format)")
        try:
            check_weight_file(path, f"download it again, or point {key}.path at another file")
        except ValueError as error:
            raise ValueError(f"{key}.path={error}") from None
        scale = lora.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise ValueError(f"{key}.scale={scale!r} is not a number; use e.g. {key}.scale=0.8")
        checked.append({"path": str(path), "scale": float(scale)})
    return checked


def fuse_style_loras(pipe: StableDiffusionPipeline, style_loras: Sequence[Mapping]) -> list[dict]:
    """Fuse each LoRA into `pipe`'s UNet and text encoder at its scale, in order; returns [{path, scale, sha256}]."""
    applied = []
    for index, lora in enumerate(check_style_loras(style_loras)):
        name = f"style_{index}"
        try:
            pipe.load_lora_weights(lora["path"], adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as error:
            pipe.unload_lora_weights()
            raise ValueError(f"model.style_loras.{index}.path={lora['path']} cannot be applied to this base model "
                             f"({' '.join(str(error).split())[:300]}); style LoRAs must be made for SD-1.x") from None
        if name not in pipe.get_list_adapters().get("unet", []) + pipe.get_list_adapters().get("text_encoder", []):
            raise ValueError(f"model.style_loras.{index}.path={lora['path']} matched no layer of this base model; "
                             "style LoRAs must be made for SD-1.x")
        pipe.fuse_lora(lora_scale=lora["scale"], adapter_names=[name])
        pipe.unload_lora_weights()
        applied.append({**lora, "sha256": file_sha256(Path(lora["path"]))})
    return applied
