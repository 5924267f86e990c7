"""tav/media.py: the clip files a run writes, and their writer threads."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from tav import media
from tav.media import ClipWriter, write_gif, write_mp4

ROOT = Path(__file__).resolve().parents[1]


def gradient_clip(frames: int = 6, size: int = 48) -> np.ndarray:
    """Smooth colour ramps that move: what a coarse palette bands."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    clip = [np.stack([x, y, (x + y + t / frames) % 1.0], axis=-1) for t in range(frames)]
    return (np.stack(clip) * 255).round().astype(np.uint8)


def test_a_gif_loops_at_the_clips_rate_and_keeps_every_frames_colours(tmp_path):
    clip = gradient_clip()
    path = write_gif(torch.from_numpy(clip), tmp_path / "a" / "clip.gif", fps=8)
    gif = Image.open(path)
    assert gif.info["loop"] == 0
    frames = [np.asarray(frame.convert("RGB"), dtype=float) for frame in ImageSequence.Iterator(gif)]
    assert len(frames) == len(clip)
    assert gif.info["duration"] in (120, 130)  # 1000 / 8 ms, in GIF's centiseconds
    for written, drawn in zip(frames, clip):
        assert np.abs(written - drawn).mean() < 6  # dithered 256 colours: a few levels of 255 off on average


def test_writing_refuses_frames_that_are_not_uint8_rgb(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_gif(np.zeros((2, 8, 8, 3), dtype=np.float32), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((2, 8, 8), dtype=np.uint8), tmp_path / "x.mp4")


def test_the_writer_returns_the_paths_at_once_and_close_waits_for_every_file(tmp_path):
    writer = ClipWriter()
    mp4, gif = writer.write(torch.from_numpy(gradient_clip(size=33)), tmp_path / "odd", fps=8)  # odd size: padded
    preview_mp4, no_gif = writer.write(torch.from_numpy(gradient_clip()), tmp_path / "preview", fps=8, gif=False)
    writer.close()
    assert no_gif is None and not (tmp_path / "preview.gif").exists()
    for path in (mp4, gif, preview_mp4):
        assert path.stat().st_size > 0


def test_an_encoding_error_met_by_one_wait_is_raised_again_by_close(tmp_path, monkeypatch):
    def broken_ffmpeg(frames, path, fps=8):
        raise OSError("ffmpeg: no such encoder")

    monkeypatch.setattr(media, "write_mp4", broken_ffmpeg)
    writer = ClipWriter()
    mp4, _ = writer.write(torch.from_numpy(gradient_clip()), tmp_path / "clip", fps=8)
    with pytest.raises(OSError, match="no such encoder"):
        writer.wait([mp4])  # e.g. a logger's, which may swallow it
    with pytest.raises(OSError, match="no such encoder"):
        writer.close()  # the run's end still reports it


def test_the_media_benchmark_reports_each_writer(tmp_path):
    out = tmp_path / "media.json"
    done = subprocess.run([sys.executable, "-m", "analysis.bench_media", "--frames", "3", "--size", "32", "--clips",
                           "2", "--repeats", "1", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(out.read_text())
    for key in ("mp4_s", "gif_s", "gif_median_cut_s", "panel_s"):
        assert row[key] > 0, key
    assert (row["frames"], row["size"], row["clips"]) == (3, 32, 2)
