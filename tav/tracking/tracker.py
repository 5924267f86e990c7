"""RunTracker: what one run logs, written to a local JSONL log and (unless disabled) to Weights & Biases.

    with RunTracker(output_dir, config, group=study_name, name=f"trial-{n}", params=trial.params) as tracker:
        trial.set_user_attr("wandb_run_id", tracker.run_id)
        result = run(cfg, [tracker.on_validation], [tracker.on_step])
        tracker.finish(result.as_record(), "completed")

Leaving the block by an exception finishes the run as "failed" (or "pruned" for optuna.TrialPruned) and
re-raises, so every run is closed and trials in one process never merge. A W&B error never reaches the run:
W&B falls back to offline or off (tav/tracking/wandb_run.py) with one warning line, and the JSONL log, written
first, always completes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from statistics import mean
from typing import Any, Callable, Mapping, Sequence

from optuna.exceptions import TrialPruned

from tav.events import ValidationEvent
from tav.tracking.jsonl import JsonlLog
from tav.tracking.secrets import redact, redact_text, redacted_error

log = logging.getLogger(__name__)

STATES = ("completed", "pruned", "failed")
LOG_NAME = "log.jsonl"


class RunTracker:
    """Logs a run's config, steps, validations, best-step summary and best checkpoint."""

    def __init__(self, output_dir: Path, config: Mapping[str, Any], *, enabled: bool = True,
                 project: str = "tav-sweep", entity: str | None = None, mode: str = "auto", dir: Path | None = None,
                 tags: Sequence[str] = (), log_videos: bool = True, group: str | None = None,
                 name: str | None = None, params: Mapping[str, Any] | None = None):
        """`enabled=False` turns W&B off (the JSONL log is still written); `dir=None` keeps W&B's files in
        `output_dir`; `params` are the trial's hyperparameters, logged with the config."""
        self.output_dir = Path(output_dir)
        self.log = JsonlLog(self.output_dir / LOG_NAME)
        config, params = redact(dict(config)), redact(dict(params or {}))
        self.config = config
        self.wandb = None
        try:
            if enabled:
                # Imported here so that logger=none never loads wandb.
                from tav.tracking.wandb_run import WandbRun, resolve_mode

                resolve_mode(mode)  # a misspelt logger.mode is the user's error, not a W&B failure
                self.wandb = WandbRun.start({**config, "params": params}, dir=Path(dir or self.output_dir),
                                            project=project, entity=entity, mode=mode, group=group, name=name,
                                            tags=tags, log_videos=log_videos)
            self._run_id = self.wandb.id if self.wandb else None
            self._run_dir = self.wandb.run_dir if self.wandb else None
            self.log.write("config", config=config, params=params, group=group, name=name,
                           wandb_run_id=self.run_id, wandb_mode=self.wandb.mode if self.wandb else "off")
        except BaseException:
            self.log.close()
            raise
        self._validations: dict[int, dict] = {}
        self._random_weights: bool | None = None
        self._last_step: tuple[int, float] | None = None
        self._finished = False

    @property
    def run_id(self) -> str | None:
        """The W&B run id (None when W&B is off): store it on the Optuna trial."""
        return self._run_id

    @property
    def wandb_dir(self) -> Path | None:
        """The W&B run folder, what `wandb sync` uploads (None when W&B is off)."""
        return self._run_dir

    def _to_wandb(self, what: str, call: Callable) -> None:
        """Call W&B; on any error warn once, stop logging to W&B and let the run go on (log.jsonl continues)."""
        if self.wandb is None:
            return
        try:
            call(self.wandb)
        except Exception as error:
            log.warning("W&B stopped logging at %s (%s); the run goes on and log.jsonl has everything",
                        what, redacted_error(error))
            broken, self.wandb = self.wandb, None
            try:
                broken.finish(failed=True)
            except Exception:  # already reported above; a second line would say nothing new
                pass

    def on_step(self, step: int, loss: float, lr: float) -> None:
        """A StepCallback: called after every optimiser step."""
        self._last_step = (step, loss)
        self.log.write("step", step=step, loss=loss, lr=lr)
        self._to_wandb("a training step", lambda w: w.log_step(step, loss, lr))

    def on_validation(self, event: ValidationEvent) -> None:
        """A validation callback; register it after the scoring callback so the scores are filled in."""
        self._random_weights = event.random_weights
        seed_scores: dict[int, list[float]] = {}
        for clip in event.clips:
            if clip.scores.get("score") is not None:
                seed_scores.setdefault(clip.seed, []).append(clip.scores["score"])
        self._validations[event.step] = {"score": event.score, "scores": dict(event.scores),
                                         "checkpoint": str(event.checkpoint_path),
                                         "seeds": list(dict.fromkeys(c.seed for c in event.clips)),
                                         "seed_scores": {seed: mean(v) for seed, v in seed_scores.items()}}
        self.log.write("validation", step=event.step, score=event.score, scores=dict(event.scores),
                       score_info=dict(event.score_info), random_weights=event.random_weights,
                       checkpoint=event.checkpoint_path)
        for clip in event.clips:
            self.log.write("clip", step=event.step, prompt=clip.prompt, seed=clip.seed, mp4=clip.mp4_path,
                           gif=clip.gif_path, scores=dict(clip.scores), random_weights=event.random_weights)
        self._to_wandb(f"the validation of step {event.step}", lambda w: w.log_validation(event))

    def summary(self, result: Mapping[str, Any] | None = None) -> dict:
        """The best step (from `result` when it names one, else the best score seen), its scores and checkpoint."""
        result = result or {}
        scored = {step: v["score"] for step, v in self._validations.items() if v["score"] is not None}
        best_step = result.get("best_step")
        if best_step is None and scored:
            best_step = max(scored, key=scored.get)
        best_score = result.get("best_score", scored.get(best_step))
        return {"best_step": best_step, "best_score": best_score,
                "best_scores": self._validations.get(best_step, {}).get("scores", {}),
                # A pruned or failed run has no result: its best validation so far still names its checkpoint.
                "best_checkpoint": result.get("best_checkpoint") or self._validations.get(best_step, {}).get("checkpoint"),
                "random_weights": result.get("random_weights", self._random_weights),
                "last_step": self._last_step[0] if self._last_step else None,
                "final_loss": self._last_step[1] if self._last_step else None}

    def finish(self, result: Mapping[str, Any] | None = None, state: str = "completed",
               reason: str | None = None) -> None:
        """Write the summary, log the best checkpoint (result["best_checkpoint"]) as a model artifact, end the
        W&B run (exit code 1 when failed) and close the JSONL log. Later calls do nothing."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got '{state}'")
        if self._finished:
            return
        self._finished = True
        reason = redact_text(reason) if reason else None
        try:
            summary = self.summary(result)
            self.log.write("summary", **summary)
            self._to_wandb("the summary", lambda w: w.log_summary({**summary, "state": state, "failure_reason": reason}))
            checkpoint = summary["best_checkpoint"]
            if checkpoint and Path(checkpoint).is_file():
                files = self._renderable(Path(checkpoint), summary, dict(result or {}))
                metadata = redact({"step": summary["best_step"], "score": summary["best_score"],
                                   "scores": summary["best_scores"], "random_weights": summary["random_weights"]})
                self._to_wandb("the model artifact", lambda w: w.log_checkpoint(files, metadata))
        finally:
            try:
                self._to_wandb("the end of the run", lambda w: w.finish(failed=state == "failed"))
            finally:
                self.log.write("finish", state=state, reason=reason, wandb_run_id=self.run_id)
                self.log.close()

    def _renderable(self, checkpoint: Path, summary: Mapping[str, Any], result: Mapping[str, Any]) -> list[Path]:
        """The checkpoint's files and, beside them, the render manifest (export.json) that makes the folder
        renderable on its own: `python generate.py <checkpoint folder>`. A config that is not a train.py config
        (no model, data, train and validation groups) gets no manifest."""
        from tav.export import INVERTED, MANIFEST, render_manifest  # the export layout; imported late (cycle)

        files = [checkpoint, checkpoint.parent / INVERTED]
        if not {"model", "data", "train", "validation"} <= set(self.config):
            return [path for path in files if path.is_file()]
        best = self._validations.get(summary["best_step"], {})
        seeds = sorted(best.get("seeds", []), key=lambda s: best.get("seed_scores", {}).get(s, 0.0), reverse=True)
        manifest = render_manifest(self.config, step=summary["best_step"], seeds=seeds,
                                   random_weights=bool(summary["random_weights"]),
                                   parameters=result.get("trainable_parameters"))
        (checkpoint.parent / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return [path for path in [*files, checkpoint.parent / MANIFEST] if path.is_file()]

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc is None:
            self.finish(None, "completed")
        else:
            reason = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
            self.finish(None, "pruned" if isinstance(exc, TrialPruned) else "failed", reason)
        return False
