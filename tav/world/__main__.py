"""Write world clips as mp4, to look at: `python -m tav.world --out clips/ --subject ball --style clipart`."""

from __future__ import annotations

import argparse
from pathlib import Path

from tav.media import write_mp4
from tav.world.render import BACKGROUNDS, MOTIONS, STYLES, SUBJECTS, render


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m tav.world", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder the mp4s are written to")
    parser.add_argument("--subject", choices=SUBJECTS, default="ball")
    parser.add_argument("--motion", choices=MOTIONS, default=MOTIONS[0])
    parser.add_argument("--background", choices=BACKGROUNDS, default="grass")
    parser.add_argument("--style", choices=STYLES, default=None, help="one style (default: both)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--size", type=int, default=128, help="height and width in pixels")
    args = parser.parse_args(argv)
    if args.frames < 2 or args.size < 16:
        parser.error(f"--frames {args.frames} --size {args.size}: a clip needs --frames >= 2 and --size >= 16")
    written = []
    for style in [args.style] if args.style else list(STYLES):
        clip = render(args.subject, args.motion, args.background, style, args.seed, args.frames, args.size, args.size)
        name = f"{args.subject}-{args.motion.replace(' ', '-')}-{args.background}-{style}-seed{args.seed}.mp4"
        written.append(write_mp4(clip.frames, args.out / name))
        print(f"{written[-1]}: {clip.caption}")
    return written


if __name__ == "__main__":
    main()
