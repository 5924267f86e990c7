"""RunTracker: what one run logs, written to a local JSONL log and (unless disabled) to Weights & Biases.

    with RunTracker(output_dir, config, group=study_name, name=f"trial-{n}", params=trial.params) as tracker:
        trial.set_user_attr("wandb_run_id", tracker.run_id)
        result = run(cfg, [tracker.on_validation], [tracker.on_step])
        tracker.finish(result.as_record(), "completed")

Leaving the block by an exception finishes the run as "failed" (or "pruned" for optuna.TrialPruned) and
re-raises, so every run is closed and trials in one process never merge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from optuna.exceptions import TrialPruned

from tav.events import ValidationEvent
from tav.tracking.jsonl import JsonlLog
from tav.tracking.secrets import redact, redact_text

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
        self.wandb = None
        try:
            if enabled:
                # Imported here so that logger=none never loads wandb.
                from tav.tracking.wandb_run import WandbRun

                self.wandb = WandbRun({**config, "params": params}, dir=Path(dir or self.output_dir),
                                      project=project, entity=entity, mode=mode, group=group, name=name,
                                      tags=tags, log_videos=log_videos)
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
        return self.wandb.id if self.wandb else None

    @property
    def wandb_dir(self) -> Path | None:
        """The W&B run folder, what `wandb sync` uploads (None when W&B is off)."""
        return self.wandb.run_dir if self.wandb else None

    def on_step(self, step: int, loss: float, lr: float) -> None:
        """A StepCallback: called after every optimiser step."""
        self._last_step = (step, loss)
        self.log.write("step", step=step, loss=loss, lr=lr)
        if self.wandb:
            self.wandb.log_step(step, loss, lr)

    def on_validation(self, event: ValidationEvent) -> None:
        """A validation callback; register it after the scoring callback so the scores are filled in."""
        self._random_weights = event.random_weights
        self._validations[event.step] = {"score": event.score, "scores": dict(event.scores),
                                         "checkpoint": event.checkpoint_path}
        self.log.write("validation", step=event.step, score=event.score, scores=dict(event.scores),
                       score_info=dict(event.score_info), random_weights=event.random_weights,
                       checkpoint=event.checkpoint_path)
        for clip in event.clips:
            self.log.write("clip", step=event.step, prompt=clip.prompt, seed=clip.seed, mp4=clip.mp4_path,
                           gif=clip.gif_path, scores=dict(clip.scores), random_weights=event.random_weights)
        if self.wandb:
            self.wandb.log_validation(event)

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
                "best_checkpoint": result.get("best_checkpoint"),
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
            if self.wandb:
                self.wandb.log_summary({**summary, "state": state, "failure_reason": reason})
                checkpoint = summary["best_checkpoint"]
                if checkpoint and Path(checkpoint).is_file():
                    self.wandb.log_checkpoint(Path(checkpoint), redact({
                        "step": summary["best_step"], "score": summary["best_score"],
                        "scores": summary["best_scores"], "random_weights": summary["random_weights"]}))
        finally:
            try:
                if self.wandb:
                    self.wandb.finish(failed=state == "failed")
            finally:
                self.log.write("finish", state=state, reason=reason, wandb_run_id=self.run_id)
                self.log.close()

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc is None:
            self.finish(None, "completed")
        else:
            reason = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
            self.finish(None, "pruned" if isinstance(exc, TrialPruned) else "failed", reason)
        return False
