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
    """Two clips written as real mp4 files from random frames, with per-clip and panel scores."""
    rng = np.random.default_rng(step)
    clips = []
    for prompt, seed in (("a panda is surfing", 33), ("a raccoon is surfing", 34)):
        frames = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
        stem = out / "samples" / f"step_{step:06d}" / f"{prompt.replace(' ', '-')}_seed{seed}"
        clips.append(RenderedClip(prompt, seed, torch.from_numpy(frames), write_mp4(frames, stem.with_suffix(".mp4")),
                                  stem.with_suffix(".gif"), {"text_alignment": 20.0 + seed, "frame_consistency": 0.9}))
    scores = {"text_alignment/mean": 20.0 + step, "frame_consistency/mean": 0.9}
    info = {"text_alignment": {"definition": "100 cos", "backbone": "ViT-L-14/random", "random_weights": True}}
    checkpoint = out / "checkpoints" / f"step_{step:06d}" / "trainable.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.full((2,), float(step))}, str(checkpoint))
    return ValidationEvent(step, clips, torch.zeros(4, 16, 16, 3, dtype=torch.uint8), "a man is surfing",
                           checkpoint, out, torch.device("cpu"), random_weights, scores, info, score)


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


def test_offline_wandb_run_holds_steps_scores_clips_table_and_checkpoint(wandb_env):
    out = wandb_env / "run"
    config = {"model": {"source": "tiny"}, "train": {"learning_rate": 3e-5}}
    tracker = RunTracker(out, config, mode="auto", group="study-a", name="trial-3", tags=["test"],
                         params={"train.learning_rate": 3e-5})
    assert tracker.wandb.mode == "offline"
    assert tracker.wandb_dir.parent == out / "wandb" and tracker.wandb_dir.name.startswith("offline-run-")
    events = [make_event(out, 2, 0.7), make_event(out, 3, 0.5)]
    for step in (1, 2, 3):
        tracker.on_step(step, 1.0 / step, 3e-5)
        if step > 1:
            assert tracker.on_validation(events[step - 2]) is None
    best = events[0].checkpoint_path
    tracker.finish({"best_step": 2, "best_score": 0.7, "best_checkpoint": str(best)}, "completed")

    records = read_wandb_records(tracker.wandb_dir)
    (run,) = of_type(records, "run")
    assert (run.run_id, run.project, run.run_group, run.display_name) == (tracker.run_id, "tav-sweep", "study-a",
                                                                         "trial-3")
    assert list(run.tags) == ["test"]
    config_logged = updates(run.config.update)
    assert config_logged["model"] == {"source": "tiny"}
    assert config_logged["params"] == {"train.learning_rate": 3e-5}
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
    assert history[2]["clips/a-panda-is-surfing_seed33._type"] == "video-file"
    assert history[3]["val/clips._type"] == "incremental-table-file"
    assert history[3]["val/clips.increment_num"] == 1

    summary = {k: v for s in of_type(records, "summary") for k, v in updates(s.update).items()}
    assert (summary["best_step"], summary["best_score"], summary["state"]) == (2, 0.7, "completed")
    assert summary["best_scores/text_alignment/mean"] == 22.0
    assert summary["random_weights"] is True and summary["final_loss"] == pytest.approx(1 / 3)

    artifacts = of_type(records, "artifact")
    (model,) = [a for a in artifacts if a.type == "model"]
    assert {"best", "step-2"} <= set(model.aliases)
    assert json.loads(model.metadata)["step"] == 2
    assert [(c.path, c.local_path) for c in model.manifest.contents] == [("trainable.safetensors", str(best))]
    assert sum(a.type == "wandb-run-incremental-table" for a in artifacts) == 2
    (exit_record,) = of_type(records, "exit")
    assert exit_record.exit_code == 0

    files = tracker.wandb_dir / "files" / "media"
    assert {sha256(p) for p in files.rglob("*.mp4")} == {sha256(c.mp4_path) for e in events for c in e.clips}
    tables = [json.loads(p.read_text()) for p in (files / "table").rglob("*.table.json")]
    assert all(t["columns"] == ["step", "prompt", "seed", "clip", "random_weights", "frame_consistency",
                                "text_alignment"] for t in tables)
    assert sorted(row[:3] for t in tables for row in t["data"]) == [
        [2, "a panda is surfing", 33], [2, "a raccoon is surfing", 34],
        [3, "a panda is surfing", 33], [3, "a raccoon is surfing", 34]]

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


def test_online_without_credentials_fails_fast_instead_of_prompting(wandb_env):
    with pytest.raises(RuntimeError, match="WANDB_API_KEY"):
        RunTracker(wandb_env / "run", {}, mode="online")
    assert read_log(wandb_env / "run" / LOG_NAME) == []


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
