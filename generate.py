"""`python generate.py <export folder> prompt="..." [key=value ...]`: render new prompts from an export.

    python generate.py exports/best prompt="a purple cube is rolling left to right on the snow"
    python generate.py exports/best 'prompts=[a cat,a dog]' 'seeds=[0,1,2]' guidance_scale=9 out=renders/

Keys: prompt | prompts (default: the export's generation prompts), seed | seeds (default: the export's best
seed), noise_mix, guidance_scale, sampling_steps, batch_size, fps (default: the export's validation settings),
device (default: the export's train.device; auto picks cuda when there is one), out (default: <export>/renders).
Writes <out>/<prompt>_seed<seed>.mp4 and .gif, and beside them <prompt>_seed<seed>.json: the prompt, seed,
render settings and the export it came from. The folder may also be a run's checkpoint folder
(checkpoints/step_<n>/, which holds the same export.json render manifest).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf
from yaml import YAMLError

from tav import export
from tav.cli import check_weight_file, one_line
from tav.config_schema import check_value, check_writable
from tav.media import write_gif, write_mp4
from tav.train import resolve_device
from tav.world.models import TOY_WORLD_NOTE

KEYS = ("prompt", "prompts", "seed", "seeds", *export.RENDER_KEYS, "device", "out")


def parse(argv: list[str]) -> tuple[Path, dict]:
    if not argv or "=" in argv[0]:
        raise ValueError('usage: python generate.py <export folder> prompt="..." [key=value ...]')
    options = OmegaConf.to_container(OmegaConf.from_dotlist(argv[1:]))
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; generate.py takes {list(KEYS)}")
    return Path(argv[0]), options


def generate(folder: Path, options: dict) -> list[Path]:
    """Render every (prompt, seed) the options ask for and write each as mp4 and gif; returns the mp4 paths."""
    loaded = export.load_export(folder)
    manifest = loaded.manifest
    prompts = [options["prompt"]] if "prompt" in options else options.get("prompts", manifest["prompts"])
    seeds = [options["seed"]] if "seed" in options else options.get("seeds", manifest["seeds"][:1])
    settings = {k: options[k] for k in export.RENDER_KEYS if k in options}
    device = resolve_device(options.get("device", manifest["device"]))
    out_dir = Path(options.get("out", folder / "renders"))
    fps = settings.get("fps", manifest["render"]["fps"])
    written = []
    for clip in export.render(loaded, [str(p) for p in prompts], [int(s) for s in seeds], settings, device):
        stem = export.clip_stem(out_dir, clip)
        written.append(write_mp4(clip.frames, stem.with_suffix(".mp4"), fps))
        write_gif(clip.frames, stem.with_suffix(".gif"), fps)
        stem.with_suffix(".json").write_text(json.dumps(sidecar(loaded, clip, settings, device), indent=2))
    return written


def sidecar(loaded: export.Export, clip: export.RenderedFrames, settings: dict, device) -> dict:
    """What a render was made from: enough to make it again."""
    manifest = loaded.manifest
    return {"prompt": clip.prompt, "seed": clip.seed, "settings": {**manifest["render"], **settings},
            "device": str(device), "export": str(loaded.folder.resolve()), "step": manifest["step"],
            "origin": manifest.get("origin"), "train_prompt": manifest["train_prompt"],
            "base_model": manifest["base_model"], "random_weights": manifest["random_weights"]}


# generate.py's keys -> the config keys whose rules they follow (tav/config_schema.py)
SCHEMA_KEYS = {"prompt": "data.prompt", "prompts": "validation.prompts", "seed": "train.seed",
               "seeds": "validation.seeds", **{k: f"validation.{k}" for k in export.RENDER_KEYS}, "device": "train.device"}


def check_options(folder: Path, options: dict) -> None:
    """Refuse an empty prompt, an out-of-range setting, an unwritable `out` or a corrupt export file, before any
    model is loaded."""
    for key, value in options.items():
        if key in SCHEMA_KEYS:
            check_value(SCHEMA_KEYS[key], value, name=key)
    check_writable(options.get("out", folder / "renders"), "out")
    if (folder / export.MANIFEST).is_file():
        for name in (export.TRAINABLE, export.INVERTED):
            check_weight_file(folder / name, "write the export again with export.py")


def main(argv: list[str] | None = None) -> int:
    try:
        folder, options = parse(sys.argv[1:] if argv is None else argv)
        check_options(folder, options)
        written = generate(folder, options)
    except (ValueError, OSError, YAMLError) as error:  # YAMLError: an option value that does not parse
        print(f"generate: {one_line(error)}", file=sys.stderr)
        return 1
    manifest = export.load_export(folder).manifest
    if manifest["base_model"]["hash"] is None:
        print(f"NOTE: the base model could not be checked: {manifest['base_model']['hash_of']}")
    if manifest["random_weights"]:
        print("NOTE: the base model has random weights (tiny preset): the clips check the plumbing, not quality")
    if manifest.get("toy_world"):
        print(f"NOTE: {TOY_WORLD_NOTE}")
    print("\n".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
