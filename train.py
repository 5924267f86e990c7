"""`python train.py [overrides]`: one Tune-A-Video run from the composed config (conf/train.yaml).

The path a clip takes: video -> frames -> latents (once) -> tuned UNet -> validation clips -> scores.
With `trial.*` set (the sweeper does it), the run reports to its Optuna trial and may be pruned.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Collection, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from tav.cli import run_hydra
from tav.data.demo import DEMO_PROMPT
from tav.world.models import TOY_WORLD_NOTE, WORLD_SOURCE
from tav.data.video import source_clip
from tav.events import ValidationCallback
from tav import pipeline
from tav.models import attention_kernels, load_base_model
from tav.prompts import build_prompts, measure_overlap, overlap_levels, realised_config, search_choice
from tav.timing import PhaseTimer, for_device
from tav.train import (PreparedModel, StepCallback, TrainResult, TrainSettings, mixed_precision_dtype, prepare,
                       prepare_key, resolve_compile, resolve_device, tune)
from tav.validation import ValidationSettings

log = logging.getLogger("tav")

# Bad input the user can fix: reported as one line, not a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


PROMPT_KEYS = ("source_subject", "edit_subjects", "target_style", "source_style")


def command_line_keys() -> set[str] | None:
    """The config keys named on this job's command line (None outside a Hydra job)."""
    if not HydraConfig.initialized():
        return None
    # Not Hydra's OverridesParser: a sweep trial's overrides hold values it rejects unquoted (a PostgreSQL URL's
    # query), and only the key before the first "=" is wanted.
    return {override.lstrip("+~").split("=", 1)[0] for override in HydraConfig.get().overrides.task}


def prompt_warnings(cfg: DictConfig, named: Collection[str] | None = None) -> list[str]:
    """Prompt settings that would be ignored, and the demo's prompts left in place for a real clip. With `named`
    (the keys the user typed), prompts.* left unused count only where typed: an experiment may set them for the
    sweeps that search prompts.overlap (experiment=tav_paper does)."""
    p, data = cfg.prompts, cfg.data
    warnings = []
    if data.video and data.prompt == DEMO_PROMPT:
        warnings.append(f"data.video is set but data.prompt is still the demo's caption '{DEMO_PROMPT}'; set "
                        "data.prompt to what your clip shows (README: Your own video)")
    if p.overlap is not None and p.source_subject and 0 <= p.overlap <= 1:
        levels = overlap_levels(data.prompt, p.source_subject)
        # choice() values are rounded (0.33 for 1/3); a value further from every level is a different caption's.
        if min(abs(p.overlap - level) for level in levels) > 0.01:
            warnings.append(f"prompts.overlap={p.overlap} is not a level of '{data.prompt}', so it renders the nearest "
                            f"one; search over its levels: prompts.overlap={search_choice(levels)}")
    if p.overlap is None:
        unused = [f"prompts.{k}" for k in PROMPT_KEYS if p.get(k) and (named is None or f"prompts.{k}" in named)]
        if unused:
            warnings.append(f"{', '.join(unused)} set but prompts.overlap is null, so unused: validation.prompts are "
                            "rendered; set prompts.overlap (e.g. 1.0) to build the generation prompts from data.prompt")
        # Prompts closer to the demo's caption than to this clip's: the demo's, left in place.
        prompts = list(cfg.validation.prompts)
        if data.video and any(measure_overlap(x, DEMO_PROMPT) > measure_overlap(x, data.prompt) for x in prompts):
            warnings.append(f"data.video is a real clip but validation.prompts are the demo's ({'; '.join(prompts)}); "
                            "set prompts.overlap and prompts.* (README: Your own video) or validation.prompts")
    return warnings


def resolve_prompts(cfg: DictConfig, warn: bool = True) -> tuple[str, list[str], dict]:
    """The training prompt, the generation prompts (as configured, or built at `prompts.overlap`) and their
    record; with `warn`, logs prompt_warnings."""
    p, data = cfg.prompts, cfg.data
    for warning in prompt_warnings(cfg, command_line_keys()) if warn else []:
        log.warning(warning)
    if p.overlap is None:
        prompts = list(cfg.validation.prompts)
        return data.prompt, prompts, {"train_prompt": data.prompt, "generation_prompts": prompts}
    if not p.edit_subjects:
        raise ValueError(f"prompts.overlap is {p.overlap} but prompts.edit_subjects is empty; name the subjects to "
                         "render, e.g. 'prompts.edit_subjects=[astronaut]'")
    pairs = [build_prompts(data.prompt, p.overlap, source_subject=p.source_subject, edit_subject=subject,
                           target_style=p.target_style or "", source_style=p.source_style or "")
             for subject in p.edit_subjects]
    record = {"train_prompt": pairs[0].train_prompt, "generation_prompts": [x.generation_prompt for x in pairs],
              "overlap_requested": p.overlap, "overlap_measured": pairs[0].overlap_measured,
              "overlap_levels": overlap_levels(data.prompt, p.source_subject)}
    return pairs[0].train_prompt, record["generation_prompts"], record


def logged_config(cfg: DictConfig) -> dict:
    """The resolved config as the run renders it (realised prompts, no unused validation.prompts): what the
    logs, W&B and exports record."""
    return realised_config(OmegaConf.to_container(cfg, resolve=True), resolve_prompts(cfg, warn=False)[2])


_SCORERS: dict[str, object] = {}  # the last scorer (CLIP backbone), reused by later runs in this process


def scoring_callbacks(cfg: DictConfig, device: str) -> list[ValidationCallback]:
    """The metrics hook, when the config has a `metrics` group."""
    if not cfg.get("metrics"):
        return []
    from tav.metrics import MetricsCallback, build_scorer

    options = {**OmegaConf.to_container(cfg.metrics.scorer, resolve=True), "device": device}
    key = json.dumps(options, sort_keys=True)
    if key not in _SCORERS:
        _SCORERS.clear()
        _SCORERS[key] = build_scorer(**options)
    return [MetricsCallback(_SCORERS[key], score_weights=dict(cfg.metrics.score_weights))]


# One worker keeps the last prepared (inflated, compiled) base model: a sweep's trials in this process share it.
_PREPARED: dict[tuple, PreparedModel] = {}


def prepared_model(cfg: DictConfig, settings: TrainSettings, timer: PhaseTimer) -> PreparedModel:
    """The base model of `cfg`, prepared for `settings`: reused from this process's last run when both agree."""
    loras = cfg.model.get("style_loras")
    loras = OmegaConf.to_container(loras, resolve=True) if loras else None
    key = (cfg.model.source, cfg.model.get("config"), json.dumps(loras, sort_keys=True), prepare_key(settings))
    if key in _PREPARED and settings.lora_rank == 0:
        return _PREPARED[key]
    _PREPARED.clear()  # one model at a time: a worker's GPU holds one
    with timer.phase("load"):
        model = load_base_model(cfg.model.source, cfg.model.get("config"), loras)
    with timer.phase("prepare"):
        prepared = prepare(model, settings)
    if settings.lora_rank == 0:  # adapters cannot be put back to a fresh state in place; prepare again
        _PREPARED[key] = prepared
    return prepared


def run(cfg: DictConfig, callbacks: Sequence[ValidationCallback] = (), step_callbacks: Sequence[StepCallback] = (),
        before_full_panel: Callable[[int, float | None], None] | None = None) -> TrainResult:
    """Load, tune and validate as `cfg` says; extra callbacks come from the caller (a trial, a logger)."""
    output_dir = Path(cfg.output_dir)
    train_prompt, generation_prompts, prompt_record = resolve_prompts(cfg)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    device = resolve_device(train["device"])
    settings = TrainSettings(**{**train, "compile": resolve_compile(train["compile"], cfg.trial.number is not None,
                                                                    device)})
    validation = ValidationSettings(**{**OmegaConf.to_container(cfg.validation, resolve=True),
                                       "prompts": generation_prompts})
    timer = for_device(device)
    with timer.phase("read_video"):
        frames = source_clip(cfg.data)
    model = prepared_model(cfg, settings, timer)
    # A model this process has not trained yet: cuDNN's attention kernels are built while the scorer loads.
    building = nullcontext() if model.used else attention_kernels.building_ahead(
        model.video_unet, pipeline.latent_size(model.vae, *frames.shape[1:3]), len(frames),
        model.tokenizer.model_max_length, mixed_precision_dtype(settings.mixed_precision), training=True)
    with building:
        with timer.phase("load_scorer"):
            all_callbacks = [*scoring_callbacks(cfg, str(device)), *callbacks]
        result = tune(model, frames, train_prompt, settings, validation, output_dir, all_callbacks, step_callbacks,
                      timer=timer, before_full_panel=before_full_panel)
    result.extra.update(prompt_record)
    (output_dir / "result.json").write_text(json.dumps(result.as_record(), indent=2))
    return result


def run_job(cfg: DictConfig) -> dict:
    """One run, logged (JSONL always, W&B unless logger=none) and, when `trial.number` is set, reporting to its
    Optuna trial; every outcome (completed, pruned, failed) is recorded and every log is closed."""
    from tav.tracking import RunTracker

    live = _live_trial(cfg)
    tracker = RunTracker(Path(cfg.output_dir), logged_config(cfg), **cfg.logger,
                         group=cfg.trial.study_name, name=f"trial-{live.number}" if live else None,
                         params=live.params if live else None)
    with tracker:
        if live is None:
            result = run(cfg, [tracker.on_validation], [tracker.on_step])
            tracker.finish(result.as_record(), "completed")
            log.info("\n%s", summary(result))
            return result.as_record()
        live.record(wandb_run_id=tracker.run_id)
        result = _run_trial(cfg, live, tracker)
        tracker.finish(result.as_record(), "completed")
        return result.as_record()


def _live_trial(cfg: DictConfig):
    if cfg.trial.number is None:
        return None
    from sweeps.live_trial import LiveTrial

    return LiveTrial(cfg.trial.storage, cfg.trial.study_name, cfg.trial.number, cfg.trial.heartbeat_interval,
                     cfg.trial.artifact_dir)


def _run_trial(cfg: DictConfig, live, tracker) -> TrainResult:
    import optuna
    from optuna.trial import TrialState

    live.record(toy_world=cfg.model.source == WORLD_SOURCE)  # pruned and failed trials are flagged too
    try:
        result = run(cfg, [tracker.on_validation, live.on_validation], [tracker.on_step, live.heartbeat],
                     live.gate_full_panel)
    except optuna.TrialPruned as pruned:
        live.stop(TrialState.PRUNED, str(pruned))
        log.info("trial %d pruned: %s", live.number, pruned)
        raise
    except Exception as error:
        live.stop(TrialState.FAIL, f"{type(error).__name__}: {error}")
        log.error("trial %d failed: %s: %s", live.number, type(error).__name__, error)
        raise
    live.record(**result.extra)
    values = live.complete(result.as_record())
    log.info("\n%s\ntrial %d values %s", summary(result), live.number, values)
    return result


def summary(result: TrainResult) -> str:
    lines = [f"{result.steps} steps in {result.seconds:.1f} s, final loss {result.losses[-1]:.4f}, "
             f"{result.trainable_parameters:,} trainable parameters"]
    for record in result.validations:
        scores = ", ".join(f"{k}={v:.3f}" for k, v in sorted(record["scores"].items()) if k.endswith("/mean"))
        score = "" if record["score"] is None else f"score {record['score']:.3f}  "
        kind = {"preview": " preview", "final": " full  "}.get(record.get("kind"), "")
        lines.append(f"  step {record['step']:>5}{kind}: {score}{scores}")
    if result.best_step is not None:
        lines.append(f"best step {result.best_step} (score {result.best_score:.3f}): {result.best_checkpoint}")
    if result.random_weights:
        lines.append("NOTE: the base model has random weights (tiny preset): scores say nothing about quality")
    elif any(record.get("random_weights") for record in result.validations):
        lines.append("NOTE: the scorer's CLIP has random weights (metrics.scorer.random_weights=true): its scores "
                     "rank nothing real")
    if result.toy_world:
        lines.append(f"NOTE: {TOY_WORLD_NOTE}")
    lines.append(f"outputs: {result.output_dir}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run_job(cfg)
    except USER_ERRORS as error:
        log.error("%s: %s", type(error).__name__, error)
        raise SystemExit(1) from None


if __name__ == "__main__":
    sys.exit(run_hydra(main, "train.py"))
