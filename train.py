"""`python train.py [overrides]`: one Tune-A-Video run from the composed config (conf/train.yaml).

The path a clip takes: video -> frames -> latents (once) -> tuned UNet -> validation clips -> scores.
With `trial.*` set (the sweeper does it), the run reports to its Optuna trial and may be pruned.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Sequence

import hydra
from omegaconf import DictConfig, OmegaConf

from tav.cli import run_hydra
from tav.data.demo import DEMO_VIDEO
from tav.data.video import load_clip
from tav.events import ValidationCallback
from tav.models import load_base_model
from tav.prompts import build_prompts
from tav.train import StepCallback, TrainResult, TrainSettings, resolve_device, tune
from tav.validation import ValidationSettings

log = logging.getLogger("tav")

# Bad input the user can fix: reported as one line, not a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def resolve_prompts(cfg: DictConfig) -> tuple[str, list[str], dict]:
    """The training prompt and the generation prompts: as configured, or built at `prompts.overlap`."""
    p = cfg.prompts
    if p.overlap is None:
        return cfg.data.prompt, list(cfg.validation.prompts), {"train_prompt": cfg.data.prompt,
                                                              "generation_prompts": list(cfg.validation.prompts)}
    pairs = [build_prompts(cfg.data.prompt, p.overlap, source_subject=p.source_subject, edit_subject=subject,
                           target_style=p.target_style, source_style=p.source_style) for subject in p.edit_subjects]
    record = {"train_prompt": pairs[0].train_prompt, "generation_prompts": [x.generation_prompt for x in pairs],
              "overlap_requested": p.overlap,
              "overlap_measured": sum(x.overlap_measured for x in pairs) / len(pairs)}
    return pairs[0].train_prompt, record["generation_prompts"], record


def scoring_callbacks(cfg: DictConfig, device: str) -> list[ValidationCallback]:
    """The metrics hook, when the config has a `metrics` group."""
    if not cfg.get("metrics"):
        return []
    from tav.metrics import MetricsCallback, build_scorer

    scorer = build_scorer(**OmegaConf.to_container(cfg.metrics.scorer, resolve=True), device=device)
    return [MetricsCallback(scorer, score_weights=dict(cfg.metrics.score_weights))]


def run(cfg: DictConfig, callbacks: Sequence[ValidationCallback] = (),
        step_callbacks: Sequence[StepCallback] = ()) -> TrainResult:
    """Load, tune and validate as `cfg` says; extra callbacks come from the caller (a trial, a logger)."""
    output_dir = Path(cfg.output_dir)
    train_prompt, generation_prompts, prompt_record = resolve_prompts(cfg)
    settings = TrainSettings(**OmegaConf.to_container(cfg.train, resolve=True))
    validation = ValidationSettings(**{**OmegaConf.to_container(cfg.validation, resolve=True),
                                       "prompts": generation_prompts})
    data = cfg.data
    frames = load_clip(data.video or DEMO_VIDEO, data.n_frames, data.height, data.width, data.start, data.stride)
    model = load_base_model(cfg.model.source, cfg.model.get("config"))
    all_callbacks = [*scoring_callbacks(cfg, str(resolve_device(settings.device))), *callbacks]
    result = tune(model, frames, train_prompt, settings, validation, output_dir, all_callbacks, step_callbacks)
    result.extra.update(prompt_record)
    (output_dir / "result.json").write_text(json.dumps(result.as_record(), indent=2))
    return result


def run_job(cfg: DictConfig) -> dict:
    """One run, logged (JSONL always, W&B unless logger=none) and, when `trial.number` is set, reporting to its
    Optuna trial; every outcome (completed, pruned, failed) is recorded and every log is closed."""
    from tav.tracking import RunTracker

    live = _live_trial(cfg)
    tracker = RunTracker(Path(cfg.output_dir), OmegaConf.to_container(cfg, resolve=True), **cfg.logger,
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

    try:
        result = run(cfg, [tracker.on_validation, live.on_validation], [tracker.on_step, live.heartbeat])
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
        lines.append(f"  step {record['step']:>5}: {score}{scores}")
    if result.best_step is not None:
        lines.append(f"best step {result.best_step} (score {result.best_score:.3f}): {result.best_checkpoint}")
    if result.random_weights:
        lines.append("NOTE: the base model has random weights (tiny preset): scores say nothing about quality")
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
