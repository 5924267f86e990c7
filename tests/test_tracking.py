"""tav.tracking: offline W&B runs read back from their transaction log and files, the JSONL log, redaction."""

from __future__ import annotations

import hashlib
import inspect
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from optuna.exceptions import TrialPruned
from safetensors.torch import save_file

from tav.events import RenderedClip, ValidationEvent
from tav.media import write_mp4
from tav.tracking import LOG_NAME, RunTracker, read_log, redact, redact_text
from tav.tracking.wandb_run import resolve_mode

CONF = Path(__file__).resolve().parents[1] / "conf" / "logger"
API_KEY = "sk-test-0123456789abcdef0123456789abcdef"
DB_PASSWORD = "dbpass-s3cret"
DB_URL = f"postgresql://tav:{DB_PASSWORD}@db.example/optuna"


@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    """No API key, no inherited W&B settings, W&B's own caches inside tmp_path: offline and no prompt."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return tmp_path


def make_event(out: Path, step: int, score: float | None, random_weights: bool = True) -> ValidationEvent:
    """Two clips of random frames, with per-clip and panel scores. Their mp4 files are written when a callback waits
    for them, as a validation's clips are written in the background."""
    rng = np.random.default_rng(step)
    clips = []
    for prompt, seed in (("a panda is surfing", 33), ("a raccoon is surfing", 34)):
        frames = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
        stem = out / "samples" / f"step_{step:06d}" / f"{prompt.replace(' ', '-')}_seed{seed}"
        clips.append(RenderedClip(prompt, seed, torch.from_numpy(frames), stem.with_suffix(".mp4"),
                                  stem.with_suffix(".gif"), {"text_alignment": 20.0 + seed, "frame_consistency": 0.9,
                                                           "score": float(seed)}))
    scores = {"text_alignment/mean": 20.0 + step, "frame_consistency/mean": 0.9}
    info = {"text_alignment": {"definition": "100 cos", "backbone": "ViT-L-14/random", "random_weights": True}}
    checkpoint = out / "checkpoints" / f"step_{step:06d}" / "trainable.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.full((2,), float(step))}, str(checkpoint))
    save_file({"inverted_latents": torch.zeros(1, 4, 4, 2, 2)}, str(checkpoint.parent / "inverted_latents.safetensors"))

    def wait_for_mp4s() -> None:
        for clip in clips:
            if not clip.mp4_path.exists():
                write_mp4(clip.frames.numpy(), clip.mp4_path)

    return ValidationEvent(step, clips, torch.zeros(4, 16, 16, 3, dtype=torch.uint8), "a man is surfing",
                           checkpoint, out, torch.device("cpu"), random_weights, scores, info, score,
                           wait_for_mp4s=wait_for_mp4s)


def read_wandb_records(run_dir: Path, timeout: float = 30.0) -> list:
    """The records of an offline run's transaction log (run-<id>.wandb), once its exit record is on disk:
    run.finish() returns before wandb-core has flushed the file."""
    deadline = time.monotonic() + timeout
    while True:
        records = parse_wandb_log(next(run_dir.glob("run-*.wandb")))
        if of_type(records, "exit") or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def parse_wandb_log(log_file: Path) -> list:
    """W&B's protobuf records in the leveldb-style log wandb-core writes (7-byte file header, 32 KiB blocks,
    records split FULL or FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

    data = log_file.read_bytes()
    assert data[:4] == b":W&B"
    records, chunk, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 or pos + 7 + length > len(data):  # end, or a record still being written
            break
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def updates(items) -> dict:
    """Config/summary/history items as {key: value}; nested keys joined with '.'."""
    return {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in items}


def of_type(records, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def demo_config(out: Path) -> dict:
    """The demo's config as train.py logs it: realised prompts, no unused validation.prompts."""
    from hydra import compose, initialize_config_dir

    from train import logged_config

    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):
        return logged_config(compose(config_name="train", overrides=[f"output_dir={out}"]))


def test_offline_wandb_run_lines_up_trials_and_its_artifact_renders_alone(wandb_env):
    out = wandb_env / "run"
    config = demo_config(out)
    tracker = RunTracker(out, config, mode="auto", group="study-a", name="trial-3", tags=["test"],
                         params={"train.learning_rate": 3e-5})
    assert tracker.wandb.mode == "offline"
    assert tracker.wandb_dir.parent == out / "wandb" and tracker.wandb_dir.name.startswith("offline-run-")
    events = [make_event(out, 2, 0.7), make_event(out, 3, 0.5)]
    for step in (1, 2, 3):
        tracker.on_step(step, 1.0 / step, 3e-5)
        if step > 1:
            assert tracker.on_validation(events[step - 2]) is None
    print("console line of the run")
    best = events[0].checkpoint_path
    tracker.finish({"best_step": 2, "best_score": 0.7, "best_checkpoint": str(best), "trainable_parameters": 2},
                   "completed")

    records = read_wandb_records(tracker.wandb_dir)
    (run,) = of_type(records, "run")
    assert (run.run_id, run.project, run.run_group, run.display_name) == (tracker.run_id, "tav-sweep", "study-a",
                                                                         "trial-3")
    assert list(run.tags) == ["test"]
    config_logged = updates(run.config.update)
    assert config_logged["model"]["source"] == "world"
    assert config_logged["params"] == {"train.learning_rate": 3e-5}
    assert config_logged["prompts"]["generation_prompts"] == [
        "a red ball is rolling left to right on the grass", "a purple cube is rolling left to right on the grass"]
    assert config_logged["prompts"]["overlap"] == 1.0 and config_logged["prompts"]["overlap_measured"] == 1.0
    assert "prompts" not in config_logged["validation"]  # never rendered: prompts.overlap built them
    later_config = {k: v for c in of_type(records, "config") for k, v in updates(c.update).items()}
    assert later_config["random_weights"] is True
    assert later_config["score_info"]["text_alignment"]["backbone"] == "ViT-L-14/random"

    history = {}
    for row in of_type(records, "history"):
        values = updates(row.item)
        history.setdefault(values["_step"], {}).update(values)
    assert [history[s]["train/loss"] for s in (1, 2, 3)] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert history[2]["train/lr"] == 3e-5
    assert history[2]["val/score"] == 0.7 and history[3]["val/text_alignment/mean"] == 23.0
    # Clip keys name the panel cell, so every trial's clips share a panel; the prompt is the caption.
    assert {k for k in history[2] if k.startswith("clips/") and k.endswith("._type")} == {
        "clips/p0_seed33._type", "clips/p1_seed34._type"}
    assert history[2]["clips/p0_seed33._type"] == "video-file"
    assert history[2]["clips/p0_seed33.caption"] == "a panda is surfing"
    assert history[3]["val/clips._type"] == "incremental-table-file"
    assert history[3]["val/clips.increment_num"] == 1

    summary = {k: v for s in of_type(records, "summary") for k, v in updates(s.update).items()}
    assert (summary["best_step"], summary["best_score"], summary["state"]) == (2, 0.7, "completed")
    # The best step's values, not the last step's (0.5 and 23.0).
    assert summary["val/score"] == 0.7 and summary["val/text_alignment/mean"] == 22.0
    assert summary["best_scores/text_alignment/mean"] == 22.0
    assert summary["random_weights"] is True and summary["final_loss"] == pytest.approx(1 / 3)

    artifacts = of_type(records, "artifact")
    (model,) = [a for a in artifacts if a.type == "model"]
    assert {"best", "step-2"} <= set(model.aliases)
    assert json.loads(model.metadata)["step"] == 2
    assert sorted((c.path, c.local_path) for c in model.manifest.contents) == [
        ("export.json", str(best.parent / "export.json")),
        ("inverted_latents.safetensors", str(best.parent / "inverted_latents.safetensors")),
        ("trainable.safetensors", str(best))]
    manifest = json.loads((best.parent / "export.json").read_text())
    assert manifest["prompts"] == config_logged["prompts"]["generation_prompts"]
    assert manifest["train_prompt"] == "a red ball is rolling left to right on the grass" and manifest["step"] == 2
    assert manifest["seeds"] == [34, 33]  # best first: seed 34's clip scores higher
    assert manifest["render"]["noise_mix"] == config["validation"]["noise_mix"]
    assert manifest["base_model"]["source"] == "world" and manifest["trainable"]["parameters"] == 2
    assert sum(a.type == "wandb-run-incremental-table" for a in artifacts) == 2
    (exit_record,) = of_type(records, "exit")
    assert exit_record.exit_code == 0
    console = "".join(r.output_raw.line for r in records if r.WhichOneof("record_type") == "output_raw")
    assert "console line of the run" in console  # console capture is on

    files = tracker.wandb_dir / "files" / "media"
    assert {sha256(p) for p in files.rglob("*.mp4")} == {sha256(c.mp4_path) for e in events for c in e.clips}
    tables = [json.loads(p.read_text()) for p in (files / "table").rglob("*.table.json")]
    assert all(t["columns"] == ["step", "prompt_index", "prompt", "seed", "clip", "random_weights",
                                "frame_consistency", "score", "text_alignment"] for t in tables)
    assert sorted(row[:4] for t in tables for row in t["data"]) == [
        [2, 0, "a panda is surfing", 33], [2, 1, "a raccoon is surfing", 34],
        [3, 0, "a panda is surfing", 33], [3, 1, "a raccoon is surfing", 34]]

    log = read_log(out / LOG_NAME)
    assert log[0]["kind"] == "config" and log[0]["wandb_run_id"] == tracker.run_id
    assert log[-1] == {**log[-1], "kind": "finish", "state": "completed", "wandb_run_id": tracker.run_id}


def test_jsonl_log_without_wandb_round_trips(wandb_env):
    out = wandb_env / "run"
    with RunTracker(out, {"train": {"max_steps": 2}}, enabled=False, params={"lr": 1e-4}) as tracker:
        assert tracker.run_id is None and tracker.wandb_dir is None
        tracker.on_step(1, 0.25, 1e-4)
        event = make_event(out, 1, 0.8)
        tracker.on_validation(event)
        tracker.finish({"best_step": 1, "best_score": 0.8, "best_checkpoint": str(event.checkpoint_path)})
    assert not (out / "wandb").exists()

    log = read_log(out / LOG_NAME)
    assert [r["kind"] for r in log] == ["config", "step", "validation", "clip", "clip", "summary", "finish"]
    assert log[0]["config"] == {"train": {"max_steps": 2}} and log[0]["params"] == {"lr": 1e-4}
    assert {k: log[1][k] for k in ("step", "loss", "lr")} == {"step": 1, "loss": 0.25, "lr": 1e-4}
    assert log[2]["scores"] == event.scores and log[2]["random_weights"] is True
    assert log[2]["checkpoint"] == str(event.checkpoint_path)
    assert [(r["prompt"], r["seed"], r["mp4"], r["scores"]) for r in log[3:5]] == [
        (c.prompt, c.seed, str(c.mp4_path), c.scores) for c in event.clips]
    assert log[5]["best_step"] == 1 and log[5]["best_scores"] == event.scores
    assert log[6]["state"] == "completed" and log[6]["reason"] is None
    assert log == [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]


def test_read_log_skips_a_last_line_cut_off_by_a_crash(tmp_path):
    path = tmp_path / LOG_NAME
    path.write_text('{"kind": "step", "step": 1}\n{"kind": "st')
    assert read_log(path) == [{"kind": "step", "step": 1}]


def test_failed_run_is_finished_and_the_exception_propagates(wandb_env):
    out = wandb_env / "run"
    with pytest.raises(RuntimeError, match="out of memory"):
        with RunTracker(out, {}, mode="offline") as tracker:
            tracker.on_step(1, 0.5, 3e-5)
            tracker.on_validation(make_event(out, 1, 0.4))
            raise RuntimeError("out of memory")
    finish = read_log(out / LOG_NAME)[-1]
    assert (finish["kind"], finish["state"], finish["reason"]) == ("finish", "failed", "RuntimeError: out of memory")
    assert tracker.log.closed
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    records = read_wandb_records(run_dir)
    assert of_type(records, "run")[0].run_id == tracker.run_id
    assert of_type(records, "exit")[0].exit_code == 1
    summary = {k: v for s in of_type(records, "summary") for k, v in updates(s.update).items()}
    assert summary["state"] == "failed" and summary["failure_reason"] == "RuntimeError: out of memory"
    assert summary["best_step"] == 1  # the best seen so far, without a result
    # Its best checkpoint so far is the run's model artifact (no render manifest: this is no train.py config).
    (model,) = [a for a in of_type(records, "artifact") if a.type == "model"]
    assert {c.path for c in model.manifest.contents} == {"trainable.safetensors", "inverted_latents.safetensors"}


def test_pruned_trial_finishes_as_pruned(wandb_env):
    out = wandb_env / "run"
    with pytest.raises(TrialPruned):
        with RunTracker(out, {}, enabled=False):
            raise TrialPruned("pruned at step 100")
    finish = read_log(out / LOG_NAME)[-1]
    assert (finish["state"], finish["reason"]) == ("pruned", "TrialPruned: pruned at step 100")


def test_no_secret_reaches_any_file_of_the_run(wandb_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", API_KEY)
    monkeypatch.setattr(sys, "argv", ["train.py", f"sweep.storage={DB_URL}"])
    out = wandb_env / "run"
    config = {"sweep": {"storage": DB_URL}, "wandb_api_key": API_KEY, "model": {"tokenizer": "clip"},
              "note": f"key {API_KEY} in text"}
    with pytest.raises(ConnectionError):
        with RunTracker(out, config, mode="offline", params={"storage": DB_URL}) as tracker:
            tracker.on_step(1, 0.5, 3e-5)
            tracker.on_validation(make_event(out, 1, 0.4))
            raise ConnectionError(f"could not connect to {DB_URL}")
    records = read_wandb_records(tracker.wandb_dir)
    assert of_type(records, "exit") and of_type(records, "history")
    assert not any(env.args for env in of_type(records, "environment"))  # metadata with sys.argv is left out

    written = [p for p in wandb_env.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        assert API_KEY.encode() not in data and DB_PASSWORD.encode() not in data, path
    log = read_log(out / LOG_NAME)
    assert log[0]["config"]["sweep"]["storage"] == "postgresql://tav:***@db.example/optuna"
    assert log[0]["config"]["model"]["tokenizer"] == "clip"
    assert log[-1]["reason"] == "ConnectionError: could not connect to postgresql://tav:***@db.example/optuna"


def test_redact(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefgh12345")
    monkeypatch.setenv("DB_PASSWORD", "xyz")  # too short to mask in free text
    config = {"api_key": "k", "db": {"password": "p", "url": "mysql+pymysql://me:pw@h:3306/d"}, "hf_token": None,
              "tokenizer": "clip", "max_tokens": 77, "paths": [Path("/a/b")], "note": "used hf_abcdefgh12345 here"}
    assert redact(config) == {"api_key": "***", "db": {"password": "***", "url": "mysql+pymysql://me:***@h:3306/d"},
                              "hf_token": None, "tokenizer": "clip", "max_tokens": 77, "paths": ["/a/b"],
                              "note": "used *** here"}
    assert redact_text("--password=hunter2 token: abc http://host:8080/x") == \
        "--password=*** token: *** http://host:8080/x"
    assert redact_text("db password xyz") == "db password xyz"


def test_resolve_mode(monkeypatch):
    assert resolve_mode("auto", {}) == "offline"
    assert resolve_mode("auto", {"WANDB_API_KEY": API_KEY}) == "online"
    assert resolve_mode("disabled", {"WANDB_API_KEY": API_KEY}) == "disabled"
    with pytest.raises(ValueError, match="logger.mode"):
        resolve_mode("dryrun", {})


def tracked_run(out: Path, **logger) -> RunTracker:
    """A run as train.py drives it: steps, one validation, finish; W&B's trouble must not change any of it."""
    with RunTracker(out, demo_config(out), **logger) as tracker:
        for step in (1, 2):
            tracker.on_step(step, 0.5, 3e-5)
        event = make_event(out, 2, 0.4)
        tracker.on_validation(event)
        tracker.finish({"best_step": 2, "best_score": 0.4, "best_checkpoint": str(event.checkpoint_path)})
    return tracker


def complete_jsonl(out: Path) -> list[str]:
    log = read_log(out / LOG_NAME)
    assert log[-1]["kind"] == "finish" and log[-1]["state"] == "completed"
    return [r["kind"] for r in log]


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("tav")]


def test_a_rejected_key_without_network_goes_offline_in_seconds_with_one_warning(wandb_env, monkeypatch, caplog,
                                                                               capfd):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # looks valid; the sandbox has no network to check it
    started = time.monotonic()
    tracker = tracked_run(wandb_env / "run", mode="auto")
    assert time.monotonic() - started < 20  # wandb.init alone would wait 90 s
    assert tracker.run_id and of_type(read_wandb_records(tracker.wandb_dir), "exit")
    (warning,) = warnings_of(caplog)
    assert warning.startswith("W&B runs offline (the W&B server") and "wandb sync" in warning
    assert "x" * 40 not in capfd.readouterr().err
    assert complete_jsonl(wandb_env / "run") == ["config", "step", "step", "validation", "clip", "clip", "summary",
                                                 "finish"]


def test_online_without_credentials_goes_offline_instead_of_prompting(wandb_env, caplog):
    tracker = tracked_run(wandb_env / "run", mode="online")
    assert tracker.run_id and tracker.wandb_dir.name.startswith("offline-run-")
    (warning,) = warnings_of(caplog)
    assert "no W&B credentials" in warning
    complete_jsonl(wandb_env / "run")


def test_nothing_writable_under_wandb_turns_wandb_off_and_the_run_goes_on(wandb_env, caplog):
    out = wandb_env / "run"
    out.mkdir()
    (out / "wandb").write_text("a file where W&B's folder goes: nothing can be written under wandb/")
    tracker = tracked_run(out, mode="offline")
    assert tracker.run_id is None
    (warning,) = warnings_of(caplog)
    assert warning.startswith("W&B is off for this run")
    assert complete_jsonl(out)[0] == "config"


def test_a_wandb_error_mid_run_stops_wandb_not_the_run(wandb_env, monkeypatch, caplog):
    from tav.tracking.wandb_run import WandbRun

    def disk_full(self, event):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(WandbRun, "log_validation", disk_full)
    tracker = tracked_run(wandb_env / "run", mode="offline")
    (warning,) = warnings_of(caplog)
    assert "W&B stopped logging at the validation of step 2 (OSError: [Errno 28] No space left" in warning
    assert tracker.wandb is None and tracker.run_id  # the trial keeps the id of the run W&B has so far
    assert complete_jsonl(wandb_env / "run").count("clip") == 2


def test_the_study_summary_run_survives_a_rejected_key(wandb_env, monkeypatch, caplog):
    from tav.tracking.study_run import log_study

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    summary = {"study": "s", "objectives": ["score"], "directions": ["maximize"], "random_weights": True,
               "pareto_trials": [0], "counts": {"complete": 1},
               "trials": [{"number": 0, "state": "complete", "pareto": True, "baseline": True, "values": [1.0],
                           "params": {"train.learning_rate": 3e-5, "prompts.overlap": 0.5}, "best_step": 2,
                           "best_seed": 0, "wandb_run_id": "abc"}]}
    run_id = log_study(summary, {}, dir=wandb_env, project="p", entity=None, mode="auto")
    (run_dir,) = (wandb_env / "wandb").glob(f"offline-run-*-{run_id}")
    (warning,) = warnings_of(caplog)
    assert warning.startswith("W&B runs offline")
    (table,) = [json.loads(p.read_text()) for p in run_dir.rglob("*.table.json")]
    assert table["columns"][4:7] == ["score", "prompts.overlap", "train.learning_rate"]  # a column per parameter
    assert table["data"][0][4:7] == [1.0, 0.5, 3e-5]


def logger_config(name: str) -> dict:
    """conf/logger/<name>.yaml's keys, without the schema node it extends (tav/config_schema.py)."""
    return {k: v for k, v in OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml")).items() if k != "defaults"}


def test_logger_configs_are_tracker_arguments(wandb_env):
    parameters = set(inspect.signature(RunTracker).parameters)
    for name in ("wandb", "none"):
        assert set(logger_config(name)) <= parameters
    none = logger_config("none")
    RunTracker(wandb_env / "run", {}, **none).finish()
    assert not (wandb_env / "run" / "wandb").exists()
    assert [r["kind"] for r in read_log(wandb_env / "run" / LOG_NAME)] == ["config", "summary", "finish"]
