"""Benchmark of writing rendered clips: one clip as mp4 and as gif, and a full panel through the ClipWriter.

A validation writes every clip as mp4 and (full panels) gif on the ClipWriter's threads while the GPU renders
the next batch; the last batch's files are waited for before the trial ends, so what the encoders take shows
in a run's "writing" phase. Frames: the given clip (default: the shipped demo clip) resized to size x size.

    python -m analysis.bench_media --video ../shared/videos/man-surfing.mp4 --out analysis/results/bench_media.json
    python -m analysis.bench_media --frames 4 --size 64 --clips 2 --repeats 1     # smoke test

Reports the median of --repeats for:
  mp4_s          write_mp4 of one clip (H.264 through imageio-ffmpeg)
  gif_s          write_gif of one clip (tav.media: fast-octree palette, dithered)
  gif_median_cut_s   the same gif through imageio's default writer (Pillow's median-cut palette): the baseline
  panel_s        --clips clips written as mp4 + gif through ClipWriter (its 4 threads), submit to close
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from tav.data.video import load_clip
from tav.media import ClipWriter, write_gif, write_mp4


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(repeats: int, fn) -> float:
    return statistics.median(seconds(fn) for _ in range(repeats))


def panel(frames: np.ndarray, clips: int, folder: Path, fps: int) -> None:
    writer = ClipWriter()
    for index in range(clips):
        writer.write(frames, folder / f"clip{index}", fps)
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=None, help="the clip to write (default: the shipped demo clip)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=512, help="frame height and width (pixels)")
    parser.add_argument("--clips", type=int, default=16, help="clips in the panel (the paper sweep's: 4 x 4)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--out", default=None, help="JSON file to write the results to")
    args = parser.parse_args()

    from tav.data.demo import DEMO_VIDEO

    video = Path(args.video) if args.video else DEMO_VIDEO
    frames = load_clip(video, args.frames, args.size, args.size).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = {
            "mp4_s": median_of(args.repeats, lambda: write_mp4(frames, folder / "one.mp4", args.fps)),
            "gif_s": median_of(args.repeats, lambda: write_gif(frames, folder / "one.gif", args.fps)),
            "gif_median_cut_s": median_of(args.repeats, lambda: imageio.mimwrite(
                folder / "base.gif", list(frames), format="GIF", duration=1000 / args.fps, loop=0)),
            "panel_s": median_of(args.repeats, lambda: panel(frames, args.clips, folder / "panel", args.fps)),
            "gif_bytes": (folder / "one.gif").stat().st_size,
            "gif_median_cut_bytes": (folder / "base.gif").stat().st_size,
        }
    row = {"video": video.name, "frames": args.frames, "size": args.size, "clips": args.clips,
           "repeats": args.repeats, **result,
           "env": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.processor()
                   or platform.machine()}}
    print(json.dumps(row))
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
