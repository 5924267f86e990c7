"""`python generate.py <export folder> prompt="..." [key=value ...]`: render new prompts from an export.

    python generate.py exports/best prompt="a purple cube is rolling left to right on the snow"
    python generate.py exports/best 'prompts=[a cat,a dog]' 'seeds=[0,1,2]' guidance_scale=9 out=renders/

Keys: prompt | prompts (default: the export's generation prompts), seed | seeds (default: the export's best
seed), noise_mix, guidance_scale, sampling_steps, batch_size, fps (default: the export's validation settings),
device (default: the export's train.device; auto picks cuda when there is one), out (default: <export>/renders).
Clips render eagerly and channels-last, as the run's validations did, also where the run compiled, so a seed
renders the clip its validation scored (up to a GPU kernel's rounding where the batch of clips differs).
Writes <out>/<prompt>_seed<seed>.mp4 and .gif, and beside them <prompt>_seed<seed>.json: the prompt, seed,
render settings and the export it came from. The folder may also be a run's checkpoint folder
(checkpoints/step_<n>/, which holds the same export.json render manifest).

Finding a good seed (tav/seed_screen.py): screen=32 renders seeds 0-31 of each prompt with screen_steps DDIM
steps (default 10), scores them with the run's metrics and renders the keep best (default 4) in full, and
scores those full renders: the console lists them best first (the first path printed is the winner); every
screened seed's scores and the full renders' go to <out>/screen.json, with the time each phase took.

    python generate.py exports/best prompt="a purple cube is rolling" screen=32 keep=4 noise_mix=0.2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf
from yaml import YAMLError

from tav import export, seed_screen, timing
from tav.cli import one_line
from tav.config_schema import check_value, check_weight_file, check_writable
from tav.media import ClipWriter
from tav.train import resolve_device
from tav.world.models import TOY_WORLD_NOTE

SCREEN_KEYS = ("screen", "screen_steps", "keep")
SCREEN_MINIMUM = {"screen": 2, "screen_steps": 1, "keep": 1}  # a screen ranks at least two seeds
KEYS = ("prompt", "prompts", "seed", "seeds", *export.RENDER_KEYS, "device", "out", *SCREEN_KEYS)


def parse(argv: list[str]) -> tuple[Path, dict]:
    if not argv or "=" in argv[0]:
        raise ValueError('usage: python generate.py <export folder> prompt="..." [key=value ...]')
    options = OmegaConf.to_container(OmegaConf.from_dotlist(argv[1:]))
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; generate.py takes {list(KEYS)}")
    return Path(argv[0]), options


def generate(folder: Path, options: dict) -> list[Path]:
    """Render every (prompt, seed) the options ask for, or the best seeds of a screen, and write each as mp4 and
    gif; returns the mp4 paths (after a screen: per prompt, best full render first)."""
    loaded = export.load_export(folder)
    manifest = loaded.manifest
    prompts = [options["prompt"]] if "prompt" in options else options.get("prompts", manifest["prompts"])
    prompts = [str(p) for p in prompts]
    seeds = [options["seed"]] if "seed" in options else options.get("seeds", manifest["seeds"][:1])
    settings = {k: options[k] for k in export.RENDER_KEYS if k in options}
    device = resolve_device(options.get("device", manifest["device"]))
    out_dir = Path(options.get("out", folder / "renders"))
    fps = settings.get("fps", manifest["render"]["fps"])
    screening = "screen" in options
    timer = timing.for_device(device)
    if screening:  # what can be refused is refused before the model loads
        seed_screen.check_noise_mix(settings.get("noise_mix", manifest["render"]["noise_mix"]))
        config = seed_screen.run_config(folder)
        seed_screen.check_scoring(config)
    renderer = export.Renderer(loaded, device, timer)
    out_dir.mkdir(parents=True, exist_ok=True)
    if screening:
        # cuDNN's attention kernels are built while the scorer loads (~3 s on a cold JIT cache, PERF.md round 18)
        with renderer.building_attention_kernels():
            with timer.phase("load_scorer"):
                scoring = seed_screen.clip_scoring(config, str(device))

            def timed_scoring(frames, prompt: str) -> dict[str, float]:
                with timer.phase("scoring"):
                    return scoring(frames, prompt)

            clips, record = screen_seeds(renderer, prompts, options, settings, timed_scoring, out_dir,
                                         notes(manifest, config))
        print(seed_screen.summary(record))
    else:
        clips, record = renderer(prompts, [int(s) for s in seeds], settings), None
    screened = seed_screen.by_clip(record) if record else {}
    written, writer = [], ClipWriter()
    with timer.phase("writing"):  # mp4 and gif of every clip at once, on the writer's threads
        for clip in clips:
            stem = export.clip_stem(out_dir, clip)
            written.append(writer.write(clip.frames, stem, fps)[0])
            made_from = {**sidecar(loaded, clip, settings, device), "screen": screened.get((clip.prompt, clip.seed))}
            stem.with_suffix(".json").write_text(json.dumps(made_from, indent=2))
        writer.close()
    if screening:  # again, with the full renders' time
        (out_dir / "screen.json").write_text(json.dumps({**record, "timings": timer.as_record()}, indent=2))
    return written


def screen_seeds(renderer: export.Renderer, prompts: list[str], options: dict, settings: dict,
                 scoring: seed_screen.ClipScoring, out_dir: Path, said: list[str]
                 ) -> tuple[list[export.RenderedFrames], dict]:
    """Screen seeds 0..screen-1 of every prompt and write <out>/screen.json at once (the ranking is kept even if
    a full render fails), then render the kept seeds in full and score them; returns those clips, per prompt
    best first, and screen.json's record."""
    steps, keep = options.get("screen_steps", 10), options.get("keep", 4)
    ranked = seed_screen.screen(renderer, prompts, range(options["screen"]), steps, settings, scoring, keep)
    record = seed_screen.as_record(ranked, steps, keep, said, renderer.timer.as_record())
    (out_dir / "screen.json").write_text(json.dumps(record, indent=2))
    clips = [clip for prompt in prompts
             for clip in renderer([prompt], [s.seed for s in ranked[prompt][:keep]], settings, batch_cap=keep)]
    # The screen names candidates; their full renders, scored the same way, name the winner.
    full = seed_screen.rank_seeds(clips, scoring)
    record.update(seed_screen.full_record(ranked, full))
    by_seed = {(clip.prompt, clip.seed): clip for clip in clips}
    return [by_seed[s.prompt, s.seed] for prompt in prompts for s in full[prompt]], record


def notes(manifest: dict, config: dict) -> list[str]:
    """What a reader of the scores must know: random weights, the toy world."""
    said = []
    if manifest["random_weights"]:
        said.append("the base model has random weights (tiny preset): the clips check the plumbing, not quality")
    if config.get("metrics", {}).get("scorer", {}).get("random_weights"):
        said.append("the scorer's CLIP has random weights: its scores rank nothing real")
    if manifest.get("toy_world"):
        said.append(TOY_WORLD_NOTE)
    return said


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
    for key, least in SCREEN_MINIMUM.items():
        value = options.get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{key}={value} must be a whole number >= {least} (e.g. screen=32 screen_steps=10 keep=4)")
    if "screen" in options and ({"seed", "seeds"} & set(options)):
        raise ValueError("screen=N screens seeds 0..N-1 itself: drop seed/seeds, or drop screen to render given seeds")
    if ("screen_steps" in options or "keep" in options) and "screen" not in options:
        raise ValueError("screen_steps and keep set a screen: add screen=N (the number of seeds to screen)")
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
