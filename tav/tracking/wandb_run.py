"""One Weights & Biases run per trial: offline unless an API key is set, never an interactive prompt.

Offline runs land in <dir>/wandb/offline-run-<time>-<id>/ and are uploaded later with `wandb sync <that folder>`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import wandb

from tav.events import ValidationEvent
from tav.tracking.secrets import redact

MODES = ("auto", "online", "offline", "disabled")


def resolve_mode(mode: str, environ: Mapping[str, str] | None = None) -> str:
    """ "auto" is online when WANDB_API_KEY is set and offline otherwise; other modes pass through."""
    if mode not in MODES:
        raise ValueError(f"logger.mode must be one of {MODES}, got '{mode}'")
    if mode != "auto":
        return mode
    environ = os.environ if environ is None else environ
    return "online" if environ.get("WANDB_API_KEY") else "offline"


class WandbRun:
    """Logs steps, validations (scores, clips, a clips table), a summary and the best checkpoint to one run."""

    def __init__(self, config: Mapping[str, Any], *, dir: Path, project: str, entity: str | None, mode: str,
                 group: str | None, name: str | None, tags: Sequence[str], log_videos: bool = True):
        self.mode = resolve_mode(mode)
        if self.mode == "online" and not wandb.login(prompt=False, verify=False):
            raise RuntimeError("logger.mode=online needs W&B credentials: set WANDB_API_KEY or run `wandb login`; "
                               "or use logger.mode=offline and upload later with `wandb sync`")
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            silent=True,
            # Console capture would copy every log line (secrets included) into the run; Hydra keeps the log.
            console="off",
            # System metadata records sys.argv; leave it out when an override on the command line holds a secret.
            x_disable_meta=redact(sys.argv) != sys.argv,
        )
        self.run = wandb.init(project=project, entity=entity, dir=str(dir), group=group, name=name, tags=list(tags),
                              config=dict(config), mode=self.mode, reinit="finish_previous", settings=settings)
        self.log_videos = log_videos
        self._table: wandb.Table | None = None
        self._score_names: list[str] = []

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def run_dir(self) -> Path:
        """The run's own folder (what `wandb sync` takes)."""
        return Path(self.run.dir).parent

    def log_step(self, step: int, loss: float, lr: float) -> None:
        self.run.log({"train/loss": loss, "train/lr": lr}, step=step)

    def log_validation(self, event: ValidationEvent) -> None:
        """Scores as val/<name>, clips as clips/<file stem>, and new rows of the incrementally logged table."""
        # The full panel rendered after training at the best preview step comes after later steps were logged:
        # W&B steps only increase, so it goes under final/ at the run's current step.
        prefix, step = ("final", None) if event.kind == "final" else ("val", event.step)
        data: dict[str, Any] = {f"{prefix}/{name}": value for name, value in event.scores.items()}
        if event.score is not None:
            data[f"{prefix}/score"] = event.score
        if self._table is None:
            self._start_table(event)
        for clip in event.clips:
            media = []
            if self.log_videos:
                video = wandb.Video(str(clip.mp4_path), caption=f"{clip.prompt} (seed {clip.seed})")
                data[f"clips/{clip.mp4_path.stem}"] = video
                media = [video]
            self._table.add_data(event.step, clip.prompt, clip.seed, *media, event.random_weights,
                                 *[clip.scores.get(name) for name in self._score_names])
        data["val/clips"] = self._table
        self.run.log(data, step=step)

    def _start_table(self, event: ValidationEvent) -> None:
        # An incremental table has fixed columns: the score names of the first validation.
        self._score_names = sorted({name for clip in event.clips for name in clip.scores})
        columns = ["step", "prompt", "seed", *(["clip"] if self.log_videos else []), "random_weights",
                   *self._score_names]
        self._table = wandb.Table(columns=columns, log_mode="INCREMENTAL")
        self.run.config.update({"random_weights": event.random_weights, "score_info": redact(event.score_info)},
                               allow_val_change=True)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        """Flat values as they are; a dict value {k: v} under key K becomes K/k."""
        flat: dict[str, Any] = {}
        for key, value in summary.items():
            if isinstance(value, Mapping):
                flat.update({f"{key}/{k}": v for k, v in value.items()})
            elif value is not None:
                flat[key] = value
        self.run.summary.update(flat)

    def log_checkpoint(self, path: Path, metadata: Mapping[str, Any]) -> None:
        """The checkpoint as a model artifact, aliases "best" and "step-<step>"."""
        artifact = wandb.Artifact(f"model-{self.run.id}", type="model", metadata=dict(metadata))
        # "immutable" references the file instead of copying a few hundred MB to W&B's staging folder; the
        # checkpoint stays in the run's output folder, next to the offline run that `wandb sync` uploads.
        artifact.add_file(str(path), name=Path(path).name, policy="immutable")
        self.run.log_artifact(artifact, aliases=["best", f"step-{metadata.get('step')}"])

    def finish(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)
