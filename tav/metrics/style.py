"""Style fidelity: how far each frame moved from the source video's look towards the target style."""

from __future__ import annotations

from pathlib import Path

import cv2
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def style_probe(image_embeds: torch.Tensor, target_text: torch.Tensor, source_text: torch.Tensor,
                logit_scale: float) -> torch.Tensor:
    """Per frame, CLIP's zero-shot probability of the target-style phrase against the source-style phrase (F,)."""
    texts = F.normalize(torch.stack([target_text, source_text]).float(), dim=-1)
    logits = logit_scale * F.normalize(image_embeds.float(), dim=-1) @ texts.T
    return logits.softmax(dim=-1)[:, 0]


def style_prototype(reference_embeds: torch.Tensor) -> torch.Tensor:
    """The target style's direction: the normalised mean of the normalised reference-image embeddings (D,)."""
    return F.normalize(F.normalize(reference_embeds.float(), dim=-1).mean(dim=0), dim=-1)


def style_margin(image_embeds: torch.Tensor, prototype: torch.Tensor, source_embeds: torch.Tensor) -> torch.Tensor:
    """Per frame, 100 * (cos(frame, reference prototype) - cos(frame, its source frame)) (F,)."""
    frames = F.normalize(image_embeds.float(), dim=-1)
    to_style = frames @ F.normalize(prototype.float(), dim=-1)
    to_source = (frames * F.normalize(source_embeds.float(), dim=-1)).sum(dim=-1)
    return 100 * (to_style - to_source)


def load_reference_images(folder: str | Path) -> list[torch.Tensor]:
    """Every image in `folder` as a uint8 (H, W, 3) RGB tensor, sorted by file name."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"style reference folder {path} does not exist; point style_reference_dir "
                                "(metrics.scorer.style_reference_dir) at a folder of target-style images, "
                                "or set it to null")
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"style reference folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    images = []
    for file in files:
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"could not read style reference image {file}")
        images.append(torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return images
