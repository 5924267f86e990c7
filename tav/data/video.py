"""Read a clip with decord: frame sampling by start, stride and count; resize and centre crop keeping aspect."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.nn.functional as F


def read_frames(path: str | Path, n_frames: int, start: int = 0, stride: int = 1) -> torch.Tensor:
    """Frames start, start+stride, ... (n_frames of them) as uint8 (frames, height, width, 3)."""
    reader, indices = open_video(path, n_frames, start, stride)
    return torch.from_numpy(reader.get_batch(indices).asnumpy())


def open_video(path: str | Path, n_frames: int, start: int = 0, stride: int = 1) -> tuple[Any, list[int]]:
    """A decord reader of the clip and the indices of the frames to read, without decoding any; a missing,
    unreadable or too short file is a one-line error saying what to change."""
    import decord

    path = Path(path)
    if n_frames < 1 or stride < 1 or start < 0:
        raise ValueError(f"frame sampling needs n_frames >= 1, stride >= 1, start >= 0; got n_frames={n_frames}, "
                         f"stride={stride}, start={start} (data.n_frames, data.stride, data.start)")
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist; set data.video to an existing file")
    try:
        with _native_stderr_silenced():
            reader = decord.VideoReader(str(path))
    except (RuntimeError, decord.DECORDError) as error:
        raise ValueError(f"cannot read video {path} ({str(error).splitlines()[0][:120]}); re-encode it as an "
                         "H.264 mp4 (ffmpeg -i in -c:v libx264 out.mp4) or point data.video at another file") from error
    needed = start + (n_frames - 1) * stride + 1
    if len(reader) < needed:
        raise ValueError(f"{path.name} has {len(reader)} frames but start={start}, stride={stride}, "
                         f"n_frames={n_frames} needs {needed}; lower data.n_frames, data.stride or data.start")
    return reader, list(range(start, needed, stride))


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """FFmpeg and decord print their own lines on the process's stderr before decord raises; the error we raise
    says it once."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def resize_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale so the frame covers height x width without distortion, then crop the centre. uint8 in, uint8 out."""
    _, src_h, src_w, _ = frames.shape
    scale = max(height / src_h, width / src_w)
    new_h, new_w = max(height, round(src_h * scale)), max(width, round(src_w * scale))
    x = frames.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    x = x[:, :, top:top + height, left:left + width]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def load_clip(path: str | Path, n_frames: int, height: int, width: int, start: int = 0, stride: int = 1) -> torch.Tensor:
    """The training clip as uint8 (frames, height, width, 3)."""
    return resize_center_crop(read_frames(path, n_frames, start, stride), height, width)


def source_clip(data: Mapping) -> torch.Tensor:
    """The clip a run is tuned on, as its `data` config samples it (data.video null: the shipped demo clip)."""
    from tav.data.demo import DEMO_VIDEO

    return load_clip(data["video"] or DEMO_VIDEO, data["n_frames"], data["height"], data["width"], data["start"],
                     data["stride"])
