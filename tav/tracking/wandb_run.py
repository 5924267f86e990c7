"""One Weights & Biases run per trial: offline unless an API key is set, never an interactive prompt.

Offline runs land in <dir>/wandb/offline-run-<time>-<id>/ and are uploaded later with `wandb sync <that folder>`.
Tracking never costs a run: when W&B cannot start online (no credentials, a rejected key, no network) the run
goes offline, and when it cannot start at all (e.g. nothing can be written under <dir>/wandb) W&B is off; each
with one warning line, within seconds (a quick reachability probe, and init_timeout instead of W&B's 90 s).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlparse

import wandb

from tav.events import ValidationEvent
from tav.tracking.secrets import redact, redact_text, redacted_error

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
PROBE_TIMEOUT_S = 3.0  # connecting to the W&B server before an online init
INIT_TIMEOUT_S = 20.0  # wandb.init's own limit (W&B's default, 90 s, would stall a trial)


def settings(**changes: Any) -> wandb.Settings:
    """W&B settings of every run here: no prompt, no banner, console captured, bounded waits."""
    return wandb.Settings(silent=True, console="wrap", init_timeout=INIT_TIMEOUT_S, **changes)


def online_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why an online run cannot start here (no credentials, server unreachable), or None."""
    environ = os.environ if environ is None else environ
    if not environ.get("WANDB_API_KEY"):
        # login prints "Loaded credentials ..." on stderr whatever the settings; the warning below says enough.
        with contextlib.redirect_stderr(io.StringIO()):
            if not wandb.login(prompt=False, verify=False):
                return "no W&B credentials (set WANDB_API_KEY or run `wandb login`)"
    url = urlparse(environ.get("WANDB_BASE_URL") or wandb.Settings().base_url)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        return f"the W&B server {url.hostname} cannot be reached ({error})"
    return None


def start_run(mode: str, **init: Any):
    """wandb.init in `mode`, falling back to offline and then to None (W&B off), with one warning line."""
    problem = online_problem() if mode == "online" else None
    if mode == "online" and problem is None:
        try:
            return wandb.init(mode="online", **init)
        except Exception as error:  # a rejected key, a server error, a timeout: any of them, W&B goes offline
            problem = redacted_error(error)
    try:
        run = wandb.init(mode="offline" if mode == "online" else mode, **init)
    except Exception as error:
        log.warning("W&B is off for this run (%s%s); log.jsonl has everything",
                    f"{redact_text(problem)}; " if problem else "", redacted_error(error))
        return None
    if problem:
        log.warning("W&B runs offline (%s); upload later with `wandb sync %s`", redact_text(problem),
                    Path(run.dir).parent)
    return run


def resolve_mode(mode: str, environ: Mapping[str, str] | None = None) -> str:
    """ "auto" is online when WANDB_API_KEY is set and offline otherwise; other modes pass through."""
    if mode not in MODES:
        raise ValueError(f"logger.mode must be one of {MODES}, got '{mode}'")
    if mode != "auto":
        return mode
    environ = os.environ if environ is None else environ
    return "online" if environ.get("WANDB_API_KEY") else "offline"


class WandbRun:
    """Logs steps, validations (scores, clips, a clips table), a summary and the best checkpoint to one run.

    Build it with WandbRun.start, which returns None when W&B cannot run at all.
    """

    def __init__(self, run, log_videos: bool = True):
        self.run = run
        self.mode = run.settings.mode
        self.log_videos = log_videos
        self._table: wandb.Table | None = None
        self._score_names: list[str] = []

    @classmethod
    def start(cls, config: Mapping[str, Any], *, dir: Path, project: str, entity: str | None, mode: str,
              group: str | None, name: str | None, tags: Sequence[str], log_videos: bool = True) -> WandbRun | None:
        mode = resolve_mode(mode)
        try:
            Path(dir).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            log.warning("W&B is off for this run (cannot write under %s: %s); log.jsonl has everything", dir, error)
            return None
        run = start_run(mode, project=project, entity=entity, dir=str(dir), group=group, name=name, tags=list(tags),
                        config=dict(config), reinit="finish_previous",
                        # System metadata records sys.argv: left out when a command-line override holds a secret.
                        settings=settings(x_disable_meta=redact(sys.argv) != sys.argv))
        return cls(run, log_videos) if run else None

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
        """Scores as val/<name>, clips as clips/p<prompt index>_seed<seed> (the same key in every trial of a
        study, the prompt as caption), and new rows of the incrementally logged table."""
        # The full panel rendered after training at the best preview step comes after later steps were logged:
        # W&B steps only increase, so it goes under final/ at the run's current step.
        prefix, step = ("final", None) if event.kind == "final" else ("val", event.step)
        data: dict[str, Any] = {f"{prefix}/{name}": value for name, value in event.scores.items()}
        if event.score is not None:
            data[f"{prefix}/score"] = event.score
        if self._table is None:
            self._start_table(event)
        indices = {prompt: index for index, prompt in enumerate(dict.fromkeys(c.prompt for c in event.clips))}
        if self.log_videos:
            event.wait_for_mp4s()
        for clip in event.clips:
            media = []
            if self.log_videos:
                video = wandb.Video(str(clip.mp4_path), caption=clip.prompt)
                data[clip_key(indices[clip.prompt], clip.seed)] = video
                media = [video]
            self._table.add_data(event.step, indices[clip.prompt], clip.prompt, clip.seed, *media,
                                 event.random_weights, *[clip.scores.get(name) for name in self._score_names])
        data["val/clips"] = self._table
        # Committed now: a row left open is flushed at finish, after log_summary, and would overwrite its values.
        self.run.log(data, step=step, commit=True)

    def _start_table(self, event: ValidationEvent) -> None:
        # An incremental table has fixed columns: the score names of the first validation.
        self._score_names = sorted({name for clip in event.clips for name in clip.scores})
        columns = ["step", "prompt_index", "prompt", "seed", *(["clip"] if self.log_videos else []),
                   "random_weights", *self._score_names]
        self._table = wandb.Table(columns=columns, log_mode="INCREMENTAL")
        self.run.config.update({"random_weights": event.random_weights, "score_info": redact(event.score_info)},
                               allow_val_change=True)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        """Flat values as they are; a dict value {k: v} under key K becomes K/k. The val/* keys get the best
        step's values (W&B's default summary is the last logged value)."""
        flat: dict[str, Any] = {}
        for key, value in summary.items():
            if isinstance(value, Mapping):
                flat.update({f"{key}/{k}": v for k, v in value.items()})
            elif value is not None:
                flat[key] = value
        flat.update({f"val/{name}": value for name, value in (summary.get("best_scores") or {}).items()})
        if summary.get("best_score") is not None:
            flat["val/score"] = summary["best_score"]
        self.run.summary.update(flat)

    def log_checkpoint(self, files: Sequence[Path], metadata: Mapping[str, Any]) -> None:
        """A checkpoint folder's files (weights, inverted latents, render manifest) as one model artifact,
        aliases "best" and "step-<step>": downloaded, it renders on its own (`python generate.py <folder>`)."""
        artifact = wandb.Artifact(f"model-{self.run.id}", type="model", metadata=dict(metadata))
        for path in files:
            # "immutable" references the file instead of copying a few hundred MB to W&B's staging folder; the
            # checkpoint stays in the run's output folder, next to the offline run that `wandb sync` uploads.
            artifact.add_file(str(path), name=Path(path).name, policy="immutable")
        self.run.log_artifact(artifact, aliases=["best", f"step-{metadata.get('step')}"])

    def finish(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def clip_key(prompt_index: int, seed: int) -> str:
    """A clip's W&B key: the panel cell, not the prompt text, so every trial's clips line up in one panel."""
    return f"clips/p{prompt_index}_seed{seed}"
