"""The CLIP backbone: an open_clip model found offline (or randomly initialised), embedding frames and text."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import try_to_load_from_cache
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Backbone:
    """An open_clip model on a device, with its tokenizer and a cache of text embeddings."""

    model: torch.nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str  # "<architecture>/<pretrained tag or file name>" or "<architecture>/random(seed=<n>)"
    random_weights: bool
    device: torch.device
    dtype: torch.dtype
    batch_size: int = 32  # frames per forward pass
    _texts: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def logit_scale(self) -> float:
        return self.model.logit_scale.exp().item()

    @torch.inference_mode()
    def embed_images(self, frames: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 embeddings (N, D) of float frames (N, H, W, 3) in [0, 1], in batches."""
        return torch.cat([F.normalize(self.model.encode_image(self._pixels(batch)).float(), dim=-1)
                          for batch in frames.split(self.batch_size)])

    @torch.inference_mode()
    def embed_text(self, text: str) -> torch.Tensor:
        """L2-normalised float32 embedding (D,) of `text`, computed once per text."""
        if text not in self._texts:
            tokens = self.tokenizer([text]).to(self.device)
            self._texts[text] = F.normalize(self.model.encode_text(tokens).float(), dim=-1)[0]
        return self._texts[text]

    def _pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """CLIP's preprocessing on the device: resize to cover the input size (bicubic), centre-crop, normalise."""
        cfg = self.model.visual.preprocess_cfg
        size_h, size_w = (cfg["size"], cfg["size"]) if isinstance(cfg["size"], int) else cfg["size"]
        x = frames.to(self.device, torch.float32).permute(0, 3, 1, 2)
        height, width = x.shape[-2:]
        scale = max(size_h / height, size_w / width)
        resized = (max(size_h, round(height * scale)), max(size_w, round(width * scale)))
        if resized != (height, width):
            x = F.interpolate(x, size=resized, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (resized[0] - size_h) // 2, (resized[1] - size_w) // 2
        x = x[..., top:top + size_h, left:left + size_w]
        mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.dtype)


def find_weights(model: str, pretrained: str, cache_dir: str | None = None) -> str:
    """The local file holding `model`'s weights: `pretrained` itself when it is a file, else the open_clip tag's
    file in the Hugging Face hub cache or open_clip's download cache. Never downloads."""
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path)
    tag = open_clip.get_pretrained_cfg(model, pretrained)
    if not tag:
        raise FileNotFoundError(
            f"pretrained={pretrained!r} (metrics.scorer.pretrained) is neither a file nor an open_clip tag of {model}; "
            f"tags: {', '.join(open_clip.list_pretrained_tags_by_model(model)) or 'none'}")
    # "org/repo/" names a repo with open_clip's default file names, "org/repo/file" one file
    repo_id, filename = os.path.split(tag.get("hf_hub", ""))
    candidates = [tag.get("file", "")]
    if repo_id:
        for name in [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]:
            cached = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            candidates.append(cached if isinstance(cached, str) else "")
    if tag.get("url"):
        candidates.append(str(Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(tag["url"])))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    how = (f"`hf download {repo_id} {filename or HF_SAFE_WEIGHTS_NAME}` (into the Hugging Face cache)" if repo_id
           else f"{tag.get('url')} into {cache_dir or '~/.cache/clip'}")
    raise FileNotFoundError(
        f"CLIP weights {model}/{pretrained} are not on this machine: download them with {how}, or set "
        "metrics.scorer.pretrained to a checkpoint file (or metrics.scorer.random_weights=true for a smoke test)")


# open_clip logs this on the root logger for every model built without weights; random weights were asked for
# here and every score made with them is flagged random_weights, so the line would only repeat that per trial.
RANDOM_INIT_NOTICE = "No pretrained weights loaded for model"


@contextlib.contextmanager
def _dropped_log(prefix: str) -> Iterator[None]:
    """Drop root-logger records starting with `prefix` while the block runs."""
    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(prefix)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _rng_devices(device: torch.device) -> list[int]:
    """The CUDA generators that drawing on `device` advances (fork_rng always restores the CPU's)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def load_backbone(model: str = "ViT-L-14", pretrained: str | None = "openai", random_weights: bool = False,
                  seed: int = 0, cache_dir: str | None = None, precision: str = "auto", batch_size: int = 32,
                  device: str | torch.device = "cpu") -> Backbone:
    """Build `model` with weights found offline (see find_weights), or randomly initialised from `seed`; `world` is
    the toy world's trained CLIP (tav/assets/world/clip)."""
    device = torch.device(device)
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"  # fp16 matches how OpenAI's CLIP ran
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}; found {precision!r}")
    if model == "world":  # the toy world's CLIP, shipped in open_clip's local-dir format
        from tav.world.models import clip_dir

        folder = clip_dir()
        with torch.random.fork_rng(devices=[]):  # building it draws init weights: leave the run's seeds alone
            clip = open_clip.create_model(f"local-dir:{folder}", precision=precision, device=device)
        return Backbone(clip.eval(), open_clip.get_tokenizer(f"local-dir:{folder}"), "world-clip/tav", False, device,
                        PRECISIONS[precision], batch_size)
    if model not in open_clip.list_models():
        raise ValueError(f"{model!r} is not an open_clip architecture (e.g. ViT-L-14, ViT-B-32, ViT-S-32)")
    if random_weights:
        with torch.random.fork_rng(devices=[]), _dropped_log(RANDOM_INIT_NOTICE):
            torch.manual_seed(seed)
            clip = open_clip.create_model(model, pretrained=None, precision=precision, device=device)
        name = f"{model}/random(seed={seed})"
    else:
        if not pretrained:
            raise ValueError("set pretrained (an open_clip tag or a checkpoint file) or random_weights=true")
        weights = find_weights(model, pretrained, cache_dir)
        tag = open_clip.get_pretrained_cfg(model, pretrained)
        preprocess = {key: tag[key] for key in ("mean", "std") if key in tag}
        # Built on its device: open_clip initialises every weight before it loads the file, and ViT-L/14's
        # initialisation on the CPU took 3.8-4.8 s a process on an H100 host (analysis/PERF.md round 10).
        with torch.random.fork_rng(devices=_rng_devices(device)), device:
            clip = open_clip.create_model(model, pretrained=weights, precision=precision, device=device,
                                          force_quick_gelu=tag.get("quick_gelu", False),
                                          force_preprocess_cfg=preprocess)
        name = f"{model}/{pretrained if tag else Path(weights).name}"
    return Backbone(clip.eval(), open_clip.get_tokenizer(model), name, random_weights, device, PRECISIONS[precision],
                    batch_size)
