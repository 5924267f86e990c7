"""Exports: a run's chosen step as a portable folder; loading it back and rendering from it.

Choosing a trial of a study by policy is sweeps/select.py's job.

An export folder holds:
  README.md                      model card: source clip, scores with definitions and backbones, seeds, prompts
  export.json                    manifest: base-model reference and hash, step, ranked seeds, prompts, scores
  config.yaml                    the run's resolved config with the prompts it rendered, secrets masked
  trainable.safetensors          the tuned weights only (bf16 by default; fp32 renders bit for bit as validation did)
  inverted_latents.safetensors   the DDIM-inverted source latents the best step rendered from (fp32, as written)
  preview/                       the best step's validation clips of the best seed (mp4 + gif)
  unet/                          only with merge: the whole inflated UNet (diffusers save_pretrained, safetensors)
Every file gets the mode the user's umask gives a new file (safetensors writes its files 0600).

The render part of the manifest (render_manifest) is also written beside a run's best checkpoint and logged
with it as the W&B model artifact, so a checkpoint folder renders on its own with generate.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Mapping, Sequence

import torch
from diffusers import UNet2DConditionModel
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from tav import pipeline, timing
from tav.models import (BaseModel, VideoUNet, attention_kernels, frozen_on, inflate_unet, load_base_model,
                        load_trainable, presets)
from tav.models.lora import add_lora
from tav.digests import file_sha256, files_sha256
from tav.models.style_lora import check_style_loras
from tav.prompts import realised_config
from tav.tracking import LOG_NAME, read_log, redact, redact_text
from tav.train import DTYPES, cast_weights
from tav.validation import ValidationSettings, Validator, best_validation, prompt_slug, scores_by
from tav.world import models as world_models
from tav.world.models import TOY_WORLD_NOTE

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
MANIFEST = "export.json"
TRAINABLE = "trainable.safetensors"
INVERTED = "inverted_latents.safetensors"
MERGED = "unet"
RENDER_KEYS = ("noise_mix", "guidance_scale", "sampling_steps", "batch_size", "fps")  # generate's defaults
# The run's speed settings, as it trained. A render repeats its frozen weights' dtype (renders are eager whether
# the run compiled or not); an export written before they were recorded renders with fp32 weights.
SPEED_KEYS = ("frozen_dtype", "compile", "compile_mode")
SPEED_DEFAULTS = {"frozen_dtype": "fp32"}  # what a render reads of them


@dataclass
class Selection:
    """One run's chosen validation step and everything the export records about it."""

    run_dir: Path
    step: int
    checkpoint_dir: Path
    score: float | None
    scores: dict[str, float]
    score_info: dict[str, dict]  # per score name (without "/mean"): definition, backbone, random_weights, ...
    random_weights: bool  # the base model's weights were random (tiny)
    toy_world: bool  # the base model is the toy world's (world)
    seeds: list[int]  # best first, by the clips' scalar score (panel order when unscored)
    seed_scores: dict[str, float]
    best_prompt: str
    train_prompt: str
    prompts: list[str]
    clips: list[dict]  # the step's validation clips: prompt, seed, mp4, gif, scores
    origin: dict = field(default_factory=dict)  # study, trial, policy, values, params; or the run folder
    parameters: int | None = None  # parameters the run trained (result.json's count)
    prompt_record: dict = field(default_factory=dict)  # the run's realised prompts and overlap


def select_run(run_dir: Path, step: int | None = None) -> Selection:
    """The run's validation at `step` (default: result.json's best step, else its last validation)."""
    run_dir = Path(run_dir)
    result_path = run_dir / "result.json"
    if not result_path.is_file():
        raise FileNotFoundError(f"{result_path} does not exist; export a run that finished (train.py writes it)")
    result = json.loads(result_path.read_text())
    record = best_validation(result["validations"], result["best_step"] if step is None else step)
    kept = [v["step"] for v in result["validations"] if v.get("checkpoint")]
    if not record.get("checkpoint") or not Path(record["checkpoint"]).is_file() \
            or not (Path(record["checkpoint"]).parent / INVERTED).is_file():
        raise FileNotFoundError(f"the checkpoint of step {record['step']} of {run_dir} is gone (validation.keep_best_k "
                                f"removed it); pick a step that was kept: {kept}")
    checkpoint_dir = Path(record["checkpoint"]).parent
    seed_scores = {seed: s["score"] for seed, s in scores_by(record, "seed").items() if "score" in s}
    prompt_scores = {p: s["score"] for p, s in scores_by(record, "prompt").items() if "score" in s}
    panel_seeds = list(dict.fromkeys(c["seed"] for c in record["clips"]))
    panel_prompts = list(dict.fromkeys(c["prompt"] for c in record["clips"]))
    extra = result.get("extra", {})
    return Selection(
        run_dir=run_dir, step=record["step"], checkpoint_dir=checkpoint_dir, score=record["score"],
        scores=dict(record["scores"]), score_info=_score_info(run_dir, record["step"]),
        random_weights=bool(result["random_weights"]), toy_world=bool(result.get("toy_world")),
        # Ties break as tav.validation.best_seed breaks them, so seeds[0] is the trial's best_seed.
        seeds=sorted(panel_seeds, key=lambda s: (seed_scores.get(str(s), 0.0), str(s)), reverse=True),
        seed_scores=seed_scores, best_prompt=max(panel_prompts, key=lambda p: (prompt_scores.get(p, 0.0), p)),
        train_prompt=extra.get("train_prompt", ""), prompts=extra.get("generation_prompts", panel_prompts),
        clips=record["clips"], origin={"run": str(run_dir)}, parameters=result.get("trainable_parameters"),
        prompt_record=dict(extra))


def _score_info(run_dir: Path, step: int) -> dict[str, dict]:
    """Score definitions and backbones, from the run's log (result.json does not keep them)."""
    log = run_dir / LOG_NAME
    if not log.is_file():
        return {}
    records = [r for r in read_log(log) if r["kind"] == "validation" and r["step"] == step]
    return records[-1].get("score_info", {}) if records else {}


# --- the base model's identity ----------------------------------------------------------------------------

def base_model_reference(source: str, config: str | None = None,
                         style_loras: Sequence[Mapping] | None = None) -> dict:
    """Where the base model comes from and hashes that identify its weights (None where none can be read): the
    model's, and each style LoRA's (path, scale, sha256) fused into it."""
    return {"source": source, "config": config, **_base_hash(source),
            "style_loras": [{"path": lora["path"], "scale": lora["scale"], "sha256": file_sha256(Path(lora["path"]))}
                            for lora in check_style_loras(style_loras)]}


def _base_hash(source: str) -> dict:
    path = world_models.ldm_dir() if source == world_models.WORLD_SOURCE else Path(source).expanduser()
    if source == "tiny":
        return {"hash": state_dict_sha256(presets.tiny_unet().state_dict()),
                "hash_of": "sha256 of the tiny preset's UNet state dict"}
    if path.is_file():
        return {"hash": file_sha256(path), "hash_of": f"sha256 of {path.name}"}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        return {"hash": files_sha256(files, path), "hash_of": f"sha256 of the {len(files)} weight files"}
    commit = _cached_commit(source)
    if commit is None:
        return {"hash": None, "hash_of": "not recorded: no cached snapshot of this hub id could be read offline"}
    return {"hash": commit, "hash_of": "commit of the cached Hugging Face snapshot"}


def check_base_model(reference: Mapping) -> None:
    """Raise when the base model or a style LoRA found here is not the one the export was tuned on."""
    for lora in reference.get("style_loras", []):
        path = Path(lora["path"])
        if not path.is_file():
            raise FileNotFoundError(f"style LoRA {path} the export was tuned with is gone; put the same file back at "
                                    f"that path (sha256 {lora['sha256'][:12]}...)")
        digest = file_sha256(path)
        if digest != lora["sha256"]:
            raise ValueError(f"style LoRA {path} here has sha256 {digest[:12]}... but the export was tuned "
                             f"with {lora['sha256'][:12]}...; put the same file back at that path")
    source = reference["source"]
    if reference.get("hash") and Path(source).expanduser().suffix in (".safetensors", ".ckpt") \
            and not Path(source).expanduser().is_file():
        raise FileNotFoundError(f"base model file {source} the export was tuned on is gone; put the same file back "
                                f"at that path (sha256 {reference['hash'][:12]}...)")
    here = _base_hash(source)
    if reference.get("hash") and here["hash"] != reference["hash"]:
        raise ValueError(f"base model '{source}' here has hash {str(here['hash'])[:12]}... but the export "
                         f"was tuned on {reference['hash'][:12]}... ({reference['hash_of']}); use the same base model")


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _cached_commit(repo_id: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "model_index.json")
    return Path(cached).parent.name if isinstance(cached, str) else None


def load_reference_model(reference: Mapping) -> BaseModel:
    """The base model a reference names, its style LoRAs fused at their recorded scales."""
    return load_base_model(reference["source"], reference.get("config"), reference.get("style_loras"))


# --- writing ----------------------------------------------------------------------------------------------

def write_export(selection: Selection, config: Mapping, out_dir: Path, dtype: str = "bf16",
                 merge: bool = False) -> dict:
    """Write the export folder for `selection`, tuned with the run config `config`; returns its manifest."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got '{dtype}'")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; export into a new folder")
    (out_dir / "preview").mkdir(parents=True, exist_ok=True)
    config = redact(realised_config(dict(config), selection.prompt_record))
    weights = load_file(str(selection.checkpoint_dir / TRAINABLE))
    save_file({k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in weights.items()},
              str(out_dir / TRAINABLE), metadata={"step": str(selection.step), "dtype": dtype})
    shutil.copyfile(selection.checkpoint_dir / INVERTED, out_dir / INVERTED)
    preview = []
    for clip in selection.clips:
        if clip["seed"] == selection.seeds[0]:
            for kind in ("mp4", "gif"):
                preview.append(f"preview/{Path(clip[kind]).name}")
                shutil.copyfile(clip[kind], out_dir / preview[-1])
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    manifest = redact({
        **render_manifest(config, step=selection.step, seeds=selection.seeds, random_weights=selection.random_weights,
                          parameters=selection.parameters, train_prompt=selection.train_prompt or None,
                          prompts=selection.prompts),
        "origin": selection.origin, "score": selection.score, "toy_world": selection.toy_world,
        "score_weights": config.get("metrics", {}).get("score_weights", {}),
        "scores": selection.scores, "score_info": selection.score_info,
        "seed_scores": selection.seed_scores, "best_prompt": selection.best_prompt, "dtype": dtype,
        "preview": preview, "merged": MERGED if merge else None,
    })
    if merge:
        write_merged(manifest, out_dir, DTYPES[dtype])
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    (out_dir / "README.md").write_text(redact_text(model_card(manifest)))
    user_file_modes(out_dir)
    return manifest


def render_manifest(config: Mapping, *, step: int, seeds: Sequence[int], random_weights: bool,
                    parameters: int | None, train_prompt: str | None = None,
                    prompts: Sequence[str] | None = None) -> dict:
    """What rendering from tuned weights needs (generate.py reads it): the base model and its hash, the tuned
    modules, the source clip, the prompts, the ranked seeds and the validation's render settings. Prompts
    default to the run config's realised ones (realised_config)."""
    model, train, data, validation = config["model"], config["train"], config["data"], config["validation"]
    realised = config.get("prompts") or {}
    return {
        "base_model": base_model_reference(model["source"], model.get("config"), model.get("style_loras")),
        "random_weights": random_weights, "step": step, "seeds": list(seeds),
        "train_prompt": train_prompt or realised.get("train_prompt") or data["prompt"],
        "prompts": list(prompts or realised.get("generation_prompts") or validation.get("prompts") or []),
        "overlap": realised.get("overlap_measured"),
        "source": {"video": data.get("video") or "the shipped demo clip (tav/assets/demo.mp4)",
                   **{k: data.get(k) for k in ("prompt", "n_frames", "start", "stride", "height", "width")}},
        "trainable": {"modules": list(train["trainable_modules"]), "lora_rank": train["lora_rank"],
                      "seed": train["seed"], "parameters": parameters},
        "render": {k: validation[k] for k in RENDER_KEYS},
        "mixed_precision": train["mixed_precision"], "device": train["device"],
        "speed": {k: train[k] for k in SPEED_KEYS},
    }


def user_file_modes(folder: Path) -> None:
    """Give every file under `folder` the mode a new file gets under the user's umask (safetensors writes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [Path(folder), *Path(folder).rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def write_merged(manifest: Mapping, out_dir: Path, dtype: torch.dtype) -> Path:
    """The whole inflated UNet (attn_temp and norm_temp included, LoRA fused) as a diffusers model folder."""
    reference = manifest["base_model"]
    video_unet = tuned_unet(load_reference_model(reference), manifest, out_dir / TRAINABLE)
    if manifest["trainable"]["lora_rank"] > 0:
        video_unet.unet.fuse_lora()
        video_unet.unet.unload_lora()
    # nn.Module.to, not diffusers' override: that one warns about keep-in-fp32 modules this UNet does not have.
    torch.nn.Module.to(video_unet.unet, dtype).save_pretrained(out_dir / MERGED, safe_serialization=True)
    return out_dir / MERGED


def model_card(manifest: Mapping) -> str:
    """README.md of an export: what it is, how it scored (and with what), how to render from it."""
    origin, reference = manifest["origin"], manifest["base_model"]
    where = (f"trial {origin['trial']} of study `{origin['study']}` (policy: {origin['policy']})"
             if "trial" in origin else f"run `{origin['run']}`")
    lines = [f"# Tune-A-Video export: step {manifest['step']} of {where}", ""]
    if manifest["random_weights"]:
        lines += ["> **Random weights.** The base model (`tiny`) has random weights: this export checks the "
                  "plumbing; its clips and scores say nothing about quality.", ""]
    if manifest.get("toy_world"):
        lines += [f"> **Toy world.** {TOY_WORLD_NOTE}.", ""]
    if any(info.get("random_weights") for info in manifest["score_info"].values()):
        lines += ["> **Random-weight scores.** Scores marked *random weights* were computed with a randomly "
                  "initialised backbone: they say nothing about quality.", ""]
    lines += ["## Base model", "",
              f"- source: `{reference['source']}`" + (f" (layout `{reference['config']}`)" if reference["config"] else ""),
              f"- hash: `{reference['hash']}` ({reference['hash_of']})",
              *[f"- style LoRA fused before tuning: `{lora['path']}` at scale {lora['scale']} "
                f"(sha256 `{lora['sha256']}`)" for lora in reference.get("style_loras", [])],
              f"- tuned weights: `{TRAINABLE}`, {_count(manifest['trainable']['parameters'])} trained parameters in "
              f"{manifest['dtype']} ({', '.join(manifest['trainable']['modules'])}"
              + (f", LoRA rank {manifest['trainable']['lora_rank']})" if manifest["trainable"]["lora_rank"] else ")"),
              f"- inverted source latents: `{INVERTED}`", ""]
    source = manifest["source"]
    lines += ["## Source clip", "", f"- video: `{source['video']}`, caption \"{source['prompt']}\"",
              f"- frames: {source['n_frames']} from frame {source['start']}, every {source['stride']}, at "
              f"{source['height']}x{source['width']} (resized to cover, centre-cropped)", ""]
    lines += _score_lines(manifest)
    lines += ["## Prompts and seeds", "", f"- training prompt: \"{manifest['train_prompt']}\"",
              *([f"- prompt overlap: {manifest['overlap']:.3g} (share of the caption kept; tav/prompts.py)"]
                if manifest.get("overlap") is not None else []),
              *[f"- generation prompt: \"{p}\"" + (" (best)" if p == manifest["best_prompt"] else "")
                for p in manifest["prompts"]],
              "- seeds, best first: " + ", ".join(
                  f"{s}" + (f" (score {manifest['seed_scores'][str(s)]:.4g})" if str(s) in manifest["seed_scores"] else "")
                  for s in manifest["seeds"]),
              "- render settings: " + ", ".join(f"{k}={v}" for k, v in manifest["render"].items()), ""]
    lines += ["## Preview", "", *[f"![{Path(p).stem}]({p})" for p in manifest["preview"] if p.endswith(".gif")], ""]
    if "params" in origin:
        lines += ["## Trial", "", *[f"- {k}: {v}" for k, v in origin["params"].items()], ""]
    lines += ["## Use", "", "```bash", 'python generate.py <this folder> prompt="a new prompt" seed=' +
              str(manifest["seeds"][0]), "```", "",
              "`generate.py` rebuilds the base model (style LoRAs fused at their scales), checks its hashes, "
              "inflates it, loads the tuned weights and "
              "the inverted latents and renders into `renders/`. The full resolved config is `config.yaml`."]
    if manifest["merged"]:
        lines += ["", f"`{MERGED}/` holds the whole inflated UNet (temporal layers included). Its module layout "
                  "is not a stock UNet2DConditionModel, so load it with:", "", "```python",
                  "from tav.export import load_merged", f"video_unet = load_merged('<this folder>/{MERGED}')", "```"]
    return "\n".join(lines) + "\n"


def _count(parameters: int | None) -> str:
    return "an unrecorded number of" if parameters is None else f"{parameters:,}"


def _score_lines(manifest: Mapping) -> list[str]:
    if manifest["score"] is None and not manifest["scores"]:
        return ["## Scores", "", "This step was not scored.", ""]
    lines = ["## Scores", "", f"At step {manifest['step']}, over the panel of prompts and seeds.", "",
             "| score | value | better | backbone | definition |", "|---|---|---|---|---|"]
    if manifest["score"] is not None:
        weights = ", ".join(f"{w:g} x {n}" for n, w in manifest["score_weights"].items())
        lines.append(f"| score | {manifest['score']:.4g} | higher | (of the scores below) | "
                     f"weighted sum of the panel means: {weights}; lower-is-better scores subtracted |")
    for name, value in sorted(manifest["scores"].items()):
        info = manifest["score_info"].get(name.split("/")[0], {})
        backbone = info.get("backbone", "not recorded") + (" (random weights)" if info.get("random_weights") else "")
        better = {True: "higher", False: "lower"}.get(info.get("higher_is_better"), "?")
        definition = info.get("definition", "not recorded").replace("|", "\\|")
        lines.append(f"| {name} | {value:.4g} | {better} | {backbone} | {definition} |")
    return [*lines, ""]


# --- loading back and rendering ---------------------------------------------------------------------------


@dataclass
class Export:
    """An export folder and its manifest (export.json)."""

    folder: Path
    manifest: dict

    @property
    def inverted_latents(self) -> torch.Tensor:
        return load_file(str(self.folder / INVERTED))["inverted_latents"]


def load_export(folder: Path) -> Export:
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder} is not an export folder (no {MANIFEST}); write one with export.py")
    return Export(folder, json.loads((folder / MANIFEST).read_text()))


def tuned_unet(model: BaseModel, manifest: Mapping, trainable_path: Path,
               frozen_dtype: torch.dtype = torch.float32) -> VideoUNet:
    """The base model's UNet, inflated (and given LoRA adapters when tuned so), with the tuned weights loaded;
    the weights it did not load (the frozen ones) in `frozen_dtype`."""
    video_unet = inflate_unet(model.unet)
    if manifest["trainable"]["lora_rank"] > 0:
        add_lora(video_unet, manifest["trainable"]["modules"], manifest["trainable"]["lora_rank"])
    tuned = set(load_trainable(video_unet, trainable_path))
    cast_weights((p for name, p in video_unet.unet.named_parameters() if name not in tuned), frozen_dtype)
    return video_unet.eval().requires_grad_(False)


def load_merged(folder: Path) -> VideoUNet:
    """A merged export's `unet/` folder as an inflated video UNet."""
    folder = Path(folder)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder))
    video_unet = inflate_unet(unet)
    state = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    video_unet.unet.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return video_unet.eval().requires_grad_(False)


@dataclass
class RenderedFrames:
    """One (prompt, seed) rendered from an export."""

    prompt: str
    seed: int
    frames: torch.Tensor  # uint8 (frames, H, W, 3)


class Renderer:
    """An export's tuned model, loaded once onto `device`, rendering (prompt, seed) cells exactly as the validation
    hook did (Validator.render): the tuned weights fp32, the others in the run's frozen dtype, eager and
    channels-last (a compiled run renders so too). `timer` holds the time per phase. Raises ValueError when the
    base model here differs from the export's."""

    def __init__(self, export: Export, device: torch.device, timer: timing.PhaseTimer | None = None):
        manifest = export.manifest
        check_base_model(manifest["base_model"])
        self.export, self.device, self.timer = export, device, timer or timing.for_device(device)
        speed = {**SPEED_DEFAULTS, **manifest.get("speed", {})}
        self.half = DTYPES.get(manifest["mixed_precision"])
        frozen = DTYPES[speed["frozen_dtype"]] if self.half else torch.float32
        with self.timer.phase("load"):
            self.model = load_reference_model(manifest["base_model"])
            self.video_unet = tuned_unet(self.model, manifest, export.folder / TRAINABLE, frozen).to(device)
        self.vae = frozen_on(self.model.vae, device, self.half)
        self.text_encoder = frozen_on(self.model.text_encoder, device, self.half)
        self.inverted = export.inverted_latents.to(device)

    def building_attention_kernels(self) -> AbstractContextManager[None]:
        """A with-block during which cuDNN's attention kernels for rendering this export's clips are built on a
        thread (tav.models.attention_kernels), joined at its end."""
        _, _, frames, height, width = self.inverted.shape
        return attention_kernels.building_ahead(self.video_unet, (height, width), frames,
                                                self.model.tokenizer.model_max_length, self.half or torch.float32,
                                                training=False)

    def __call__(self, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping,
                 batch_cap: int | None = None) -> list[RenderedFrames]:
        """Every (prompt, seed); `settings` holds RENDER_KEYS (defaults: the export's). With batch_size 0 (auto)
        a batch holds at most `batch_cap` clips."""
        manifest, device = self.export.manifest, self.device
        # Encoded in one batch with the training prompt first, as the training loop does.
        embeddings = pipeline.encode_prompts(self.model.tokenizer, self.text_encoder,
                                             [manifest["train_prompt"], "", *prompts], device)
        s = ValidationSettings(prompts=list(prompts), seeds=list(seeds), **{**manifest["render"], **settings})
        autocast = partial(torch.autocast, device.type, dtype=self.half) if self.half else nullcontext
        validator = Validator(s, self.vae, self.inverted, torch.empty(0, dtype=torch.uint8), manifest["train_prompt"],
                              embeddings[2:], embeddings[1:2], self.model.scheduler_config, self.export.folder,
                              self.model.random_weights, autocast=autocast, timer=self.timer, batch_cap=batch_cap)
        with validator.rendering_layout(self.video_unet):
            if s.batch_size == 0:
                validator.size_batches(self.video_unet)
            return [RenderedFrames(prompts[index], seed, frames)
                    for index, seed, frames in validator.render_panel(self.video_unet, self.inverted)]


def render(export: Export, prompts: Sequence[str], seeds: Sequence[int], settings: Mapping,
           device: torch.device) -> list[RenderedFrames]:
    """Render every (prompt, seed) from the export once (a Renderer that is not kept)."""
    return Renderer(export, device)(prompts, seeds, settings)


def clip_stem(out_dir: Path, clip: RenderedFrames) -> Path:
    """Where a rendered clip goes, named as the validation hook names its clips."""
    return Path(out_dir) / f"{prompt_slug(clip.prompt)}_seed{clip.seed}"
