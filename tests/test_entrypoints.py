"""The top-level commands as a user runs them: composed configs and the embedded demo."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import preloaded

ROOT = Path(__file__).resolve().parents[1]


def composed(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def test_tav_paper_experiment_is_the_official_man_surfing_recipe():
    cfg = composed("train", "experiment=tav_paper")
    assert cfg.model.source == "CompVis/stable-diffusion-v1-4"
    assert (cfg.data.n_frames, cfg.data.height, cfg.data.width) == (24, 512, 512)
    assert cfg.data.prompt == "a man is surfing"
    t = cfg.train
    assert (t.learning_rate, t.max_steps, t.lr_scheduler, t.weight_decay, t.max_grad_norm) == (3e-5, 500, "constant", 1e-2, 1.0)
    assert (t.mixed_precision, t.gradient_checkpointing, t.seed) == ("fp16", True, 33)
    assert list(t.trainable_modules) == ["attn1.to_q", "attn2.to_q", "attn_temp"]
    v = cfg.validation
    assert (v.every_n_steps, v.inversion_steps, v.sampling_steps, v.guidance_scale) == (100, 50, 50, 12.5)
    assert list(v.prompts) == ["a panda is surfing", "a boy, wearing a birthday hat, is surfing",
                               "a raccoon is surfing, cartoon style", "Iron Man is surfing in the desert"]
    assert cfg.metrics.scorer.model == "ViT-L-14" and cfg.metrics.scorer.pretrained == "openai"


def test_demo_is_the_default_and_sweep_composes_on_the_same_tree():
    train = composed("train")
    assert train.model.source == "world" and train.metrics.scorer.model == "world" and train.metrics.scorer.world_truth
    sweep = composed("sweep")
    assert sweep.train == train.train and list(sweep.validation.seeds) == [0, 1, 2, 3]


@pytest.mark.slow
def test_python_train_py_runs_the_demo_and_logs_it(tmp_path):
    # The timeout guards against a hang (W&B waiting for a key), not the speed: ~3 min here, 5 under load.
    done = subprocess.run([sys.executable, "train.py", f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env={**__import__("os").environ, "WANDB_API_KEY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert [v["step"] for v in result["validations"]] == [20, 40, 60]
    assert result["best_step"] in (20, 40, 60) and Path(result["best_checkpoint"]).is_file()
    assert len(result["validations"][0]["clips"]) == 4  # 2 prompts x 2 seeds
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # W&B ran offline, without prompting
    kinds = {json.loads(line)["kind"] for line in (tmp_path / "log.jsonl").read_text().splitlines()}
    assert {"config", "step", "validation", "clip", "finish"} <= kinds
    assert "toy-world scores" in done.stdout + done.stderr and result["toy_world"]
    assert {"world_style/mean", "world_subject/mean", "world_motion_error/mean"} <= set(result["validations"][0]["scores"])


@pytest.mark.slow
def test_bad_input_is_one_clear_line_and_a_preloaded_process_says_the_same(tmp_path):
    argv = [sys.executable, "train.py", f"hydra.run.dir={tmp_path}", "data.n_frames=99", "logger=none"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "demo.mp4 has 24 frames but start=0, stride=3, n_frames=99 needs 295" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    # Most tests run the entrypoints in processes forked from a preloaded one (tests/preloaded.py): the same result.
    forked = preloaded.run(argv, timeout=300)
    untimed = [re.sub(r"^\[[\d:, -]+\]", "", out, flags=re.M) for out in (done.stdout, forked.stdout)]
    assert (forked.returncode, forked.stderr, untimed[1]) == (done.returncode, done.stderr, untimed[0])


def test_the_second_run_in_a_process_reuses_the_prepared_model_and_matches_a_fresh_one(tmp_path, monkeypatch):
    """A sweep worker runs its trials in one process: the second loads and compiles nothing, and trains as fresh;
    only the first has attention kernels built ahead, for its clip's shape."""
    import torch

    import train
    from tav import pipeline

    built = []
    monkeypatch.setattr(train.attention_kernels, "start_building", lambda *args, **kwargs: built.append(args[1:]))
    small = ["data.n_frames=4", "data.height=32", "data.width=32", "train.max_steps=2", "validation.every_n_steps=2",
             "validation.inversion_steps=2", "validation.sampling_steps=2", "validation.seeds=[0]", "logger=none",
             "metrics.scorer.flow_threads=1"]
    train._PREPARED.clear()
    first = train.run(composed("train", *small, "train.seed=5", f"output_dir={tmp_path / 'first'}"))
    second = train.run(composed("train", *small, "train.seed=5", f"output_dir={tmp_path / 'second'}"))
    assert "load" in first.timings and "prepare" in first.timings
    assert "load" not in second.timings and "prepare" not in second.timings
    assert second.losses == first.losses
    vae = next(iter(train._PREPARED.values())).vae
    latents = pipeline.encode_clip(vae, torch.zeros(4, 32, 32, 3, dtype=torch.uint8))
    assert built == [(tuple(latents.shape[-2:]), 4, 77, torch.float32)]  # the demo trains without mixed precision
    train._PREPARED.clear()


class Prepared(Exception):
    """Stops a run once its settings are resolved."""


@pytest.mark.parametrize("trial, compiled", [(None, False), (0, True)])
def test_speed_fast_compiles_a_sweeps_trial_on_a_gpu_but_not_a_single_run(tmp_path, monkeypatch, trial, compiled):
    import torch

    import train
    from tav.timing import PhaseTimer

    def stop(cfg, settings, timer):
        raise Prepared(settings.compile)

    monkeypatch.setattr(train, "resolve_device", lambda device: torch.device("cuda"))  # a GPU machine, as far as run()
    monkeypatch.setattr(train, "for_device", lambda device: PhaseTimer())               # can tell, up to the model
    monkeypatch.setattr(train, "prepared_model", stop)
    number = "null" if trial is None else trial
    cfg = composed("train", "speed=fast", "logger=none", f"output_dir={tmp_path}", f"trial.number={number}")
    with pytest.raises(Prepared) as prepared:
        train.run(cfg)
    assert prepared.value.args[0] is compiled


@pytest.mark.parametrize("random_model, random_scorer, notes", [
    (True, False, ["NOTE: the base model has random weights"]),
    (False, True, ["NOTE: the scorer's CLIP has random weights"]),
    (False, False, [])])
def test_the_run_summary_says_whose_random_weights_made_its_scores(tmp_path, random_model, random_scorer, notes):
    import torch

    import train
    from tav.events import ValidationEvent
    from tav.train import TrainResult, validation_record

    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    event = ValidationEvent(10, [], frames, "a ball", tmp_path / "w.safetensors", tmp_path, torch.device("cpu"),
                            random_weights=random_model)
    event.score_info = {"text_alignment": {"backbone": "ViT-L-14/random(seed=0)", "random_weights": random_scorer}}
    event.score = 1.0
    result = TrainResult(tmp_path, 10, [0.1], [validation_record(event)], 10, 1.0, None, 1, 1.0, random_model)
    said = [line for line in train.summary(result).splitlines() if line.startswith("NOTE")]
    assert [line[:len(note)] for line, note in zip(said, notes)] == notes and len(said) == len(notes)
