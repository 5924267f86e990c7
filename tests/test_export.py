"""Export and generate: choosing a trial, the export folder, rendering from it bit for bit as validation did."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import optuna
import pytest
import torch
from omegaconf import OmegaConf
from optuna.trial import TrialState
from safetensors.torch import load_file

import generate as generate_cli
import preloaded
from sweeps import select
from tav import export, seed_screen
from tav.media import write_mp4
from tav.models import load_base_model
from tav.models import presets

SECRET = "sk-secret-123"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return preloaded.run([sys.executable, *args], env={**os.environ, "WANDB_MODE": "disabled", **(env or {})},
                         timeout=300)


@pytest.fixture(scope="module")
def study(study_storage):
    """The small study of conftest.py (batch_size=1, so batching cannot change float rounding)."""
    return study_storage, optuna.load_study(study_name="tav-demo", storage=study_storage)


def complete(study: optuna.Study) -> list:
    return study.get_trials(states=(TrialState.COMPLETE,))


def decoded(mp4: Path) -> np.ndarray:
    return np.stack(imageio.mimread(mp4))


@pytest.mark.slow
def test_rendering_an_export_reproduces_its_validation_clip_exactly(study, tmp_path):
    storage, study = study
    trial = study.trials[1]  # not the baseline: noise_mix=0.2, so the seed matters
    folder = tmp_path / "export"
    done = run_cli("export.py", "--storage", storage, "--study", "tav-demo", "--trial", "1", "--dtype", "fp32",
                   "--out", str(folder))
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["step"] == trial.user_attrs["best_step"] and manifest["seeds"][0] == trial.user_attrs["best_seed"]
    assert manifest["render"]["noise_mix"] == 0.2
    done = run_cli("generate.py", str(folder), f"prompt={manifest['best_prompt']}",
                   f"seed={manifest['seeds'][0]}", f"out={tmp_path / 'renders'}")
    assert done.returncode == 0, done.stderr[-2000:]
    rendered = Path(done.stdout.strip().splitlines()[-1])
    validation = (Path(trial.user_attrs["output_dir"]) / "samples" / f"step_{manifest['step']:06d}" / rendered.name)
    np.testing.assert_array_equal(decoded(rendered), decoded(validation))
    assert rendered.read_bytes() == validation.read_bytes()
    assert rendered.with_suffix(".gif").is_file()
    sidecar = json.loads(rendered.with_suffix(".json").read_text())
    assert (sidecar["prompt"], sidecar["seed"], sidecar["step"]) == (manifest["best_prompt"], manifest["seeds"][0],
                                                                    manifest["step"])
    assert sidecar["settings"] == manifest["render"] and sidecar["export"] == str(folder.resolve())
    assert sidecar["origin"]["trial"] == 1


@pytest.mark.slow
def test_a_seed_screen_ranks_every_seed_and_renders_the_best_in_full(study, tmp_path):
    storage, _ = study
    folder = tmp_path / "export"
    done = run_cli("export.py", "--storage", storage, "--study", "tav-demo", "--trial", "1", "--dtype", "fp32",
                   "--out", str(folder))
    assert done.returncode == 0, done.stderr[-2000:]
    done = run_cli("generate.py", str(folder), "prompt=a cube", "screen=4", "screen_steps=1", "keep=2",
                   f"out={tmp_path / 'screen'}")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "screen" / "screen.json").read_text())
    ranked = record["prompts"]["a cube"]
    assert sorted(s["seed"] for s in ranked) == [0, 1, 2, 3] and record["steps"] == 1
    assert [s["score"] for s in ranked] == sorted((s["score"] for s in ranked), reverse=True)
    assert record["kept"]["a cube"] == [s["seed"] for s in ranked[:2]]
    assert any("random weights" in note for note in record["notes"])  # the tiny model's scores say so
    assert {"load", "sampling", "decode", "scoring", "writing"} <= set(record["timings"])  # where its time went
    # the kept seeds' full renders are scored too, and listed best first: the first path is the winner
    full = record["full"]["a cube"]
    assert sorted(s["seed"] for s in full) == sorted(record["kept"]["a cube"]) and record["best"]["a cube"] == full[0]["seed"]
    assert [s["score"] for s in full] == sorted((s["score"] for s in full), reverse=True)
    assert [s["screen_rank"] for s in full] == [record["kept"]["a cube"].index(s["seed"]) + 1 for s in full]
    written = [Path(line) for line in done.stdout.strip().splitlines() if line.endswith(".mp4")]
    assert [p.name for p in written] == [f"a-cube_seed{s['seed']}.mp4" for s in full]
    said = json.loads(written[0].with_suffix(".json").read_text())["screen"]
    assert (said["full_rank"], said["full_score"], said["rank"]) == (1, full[0]["score"], full[0]["screen_rank"])
    assert f"a cube: 4 seeds screened in 1 steps, the best 2 rendered in full\n  seed {full[0]['seed']:>4}: full" in done.stdout
    # the kept seeds are rendered in full: the same clip as rendering that seed without a screen
    done = run_cli("generate.py", str(folder), "prompt=a cube", f"seed={record['kept']['a cube'][0]}",
                   f"out={tmp_path / 'plain'}")
    assert (tmp_path / "plain" / written[0].name).read_bytes() == written[0].read_bytes()
    for options, refusal in ((["screen=4", "noise_mix=0"], "noise_mix=0 starts every seed"),
                             (["screen=4", "seed=1"], "drop seed/seeds"), (["keep=2"], "add screen=N"),
                             (["screen=1"], "screen=1 must be a whole number >= 2"),
                             (["compile=true"], "unknown option(s) ['compile']")):
        done = run_cli("generate.py", str(folder), "prompt=a cube", *options, f"out={tmp_path / 'refused'}")
        assert done.returncode == 1 and refusal in done.stderr and not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_a_screen_builds_its_attention_kernels_while_its_scorer_loads(study, tmp_path, monkeypatch):
    """The kernels a render needs are built on a thread (on a GPU) started once the model is loaded, before the
    scorer loads, and joined before generate.py returns; a config the screen cannot score with is refused first."""
    storage, _ = study
    folder = tmp_path / "export"
    assert run_cli("export.py", "--storage", storage, "--study", "tav-demo", "--trial", "1", "--out",
                   str(folder)).returncode == 0
    events = []

    class Building:
        def join(self) -> None:
            events.append("joined")

    def start_building(video_unet, latent_size, frames, text_tokens, dtype, training):
        events.append(("build", latent_size, frames, text_tokens, dtype, training))
        return Building()

    monkeypatch.setattr(export.attention_kernels, "start_building", start_building)
    clip_scoring, load, render = seed_screen.clip_scoring, export.Renderer.__init__, export.Renderer.__call__
    monkeypatch.setattr(export.Renderer, "__init__", lambda self, *args: events.append("load") or load(self, *args))
    monkeypatch.setattr(seed_screen, "clip_scoring", lambda *args: events.append("scorer") or clip_scoring(*args))
    monkeypatch.setattr(export.Renderer, "__call__",
                        lambda self, *args, **kwargs: events.append("render") or render(self, *args, **kwargs))
    screen = [str(folder), "prompt=a cube", "screen=2", "screen_steps=1", "keep=1"]
    assert generate_cli.main([*screen, f"out={tmp_path / 'screen'}"]) == 0
    inverted = export.load_export(folder).inverted_latents
    dtype = export.DTYPES.get(export.load_export(folder).manifest["mixed_precision"]) or torch.float32
    assert events == ["load", ("build", tuple(inverted.shape[-2:]), inverted.shape[2], 77, dtype, False),
                      "scorer", "render", "render", "joined"]

    config = OmegaConf.load(folder / "config.yaml")
    config.data.video = str(tmp_path / "elsewhere.mp4")
    OmegaConf.save(config, folder / "config.yaml")
    events.clear()
    assert generate_cli.main([*screen, f"out={tmp_path / 'refused'}"]) == 1
    assert events == [] and not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_a_runs_best_checkpoint_folder_renders_on_its_own(study, tmp_path):
    # The W&B model artifact holds exactly this folder's files: weights, inverted latents, export.json.
    _, study = study
    trial = complete(study)[-1]
    checkpoint = Path(trial.user_attrs["best_checkpoint"]).parent
    assert sorted(p.name for p in checkpoint.iterdir()) == ["export.json", "inverted_latents.safetensors",
                                                           "trainable.safetensors"]
    manifest = json.loads((checkpoint / "export.json").read_text())
    assert manifest["seeds"][0] == trial.user_attrs["best_seed"]
    prompt = manifest["prompts"][0]
    done = run_cli("generate.py", str(checkpoint), f"prompt={prompt}", f"seed={manifest['seeds'][0]}",
                   f"out={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    rendered = Path(done.stdout.strip().splitlines()[-1])
    validation = checkpoint.parents[1] / "samples" / checkpoint.name / rendered.name
    assert rendered.read_bytes() == validation.read_bytes()


@pytest.mark.slow
def test_a_renderer_repeats_the_runs_frozen_dtype_and_renders_eager_where_the_run_compiled(study):
    """Rendering as the run's validation did: untuned weights in its frozen dtype, tuned ones fp32, and nothing
    compiled, as a compiled run's validations render (pipeline.sample)."""
    _, study = study
    checkpoint = Path(complete(study)[-1].user_attrs["best_checkpoint"]).parent
    loaded = export.load_export(checkpoint)
    assert loaded.manifest["speed"] == {"frozen_dtype": "fp32", "compile": False, "compile_mode": "regional"}
    loaded.manifest.update(mixed_precision="bf16",
                           speed={"frozen_dtype": "bf16", "compile": True, "compile_mode": "regional"})
    tuned = set(load_file(str(checkpoint / export.TRAINABLE)))
    renderer = export.Renderer(loaded, torch.device("cpu"))
    dtypes = {name: p.dtype for name, p in renderer.video_unet.unet.named_parameters()}
    assert {dtypes[name] for name in tuned} == {torch.float32}
    assert {dtype for name, dtype in dtypes.items() if name not in tuned} == {torch.bfloat16}
    assert not any(getattr(m, "_compiled_call_impl", None) for m in renderer.video_unet.unet.modules())
    assert "load" in renderer.timer.as_record()


@pytest.mark.slow
def test_export_folder_layout_and_card(study, tmp_path):
    storage, study = study
    folder = tmp_path / "export"
    done = run_cli("export.py", "--storage", storage, "--study", "tav-demo", "--out", str(folder))
    assert done.returncode == 0, done.stderr[-2000:]
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"README.md", "export.json", "config.yaml", "trainable.safetensors", "inverted_latents.safetensors"} <= names
    assert any(n.startswith("preview/") and n.endswith(".mp4") for n in names)
    assert all(t.dtype == torch.bfloat16 for t in load_file(str(folder / "trainable.safetensors")).values())
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["base_model"]["hash"] == export.base_model_reference("tiny")["hash"]
    assert manifest["origin"]["trial"] in {t.number for t in study.best_trials}
    assert manifest["origin"]["policy"] == "Pareto point, weights equal"  # a study of several objectives
    card = (folder / "README.md").read_text()
    for name, info in manifest["score_info"].items():
        assert info["definition"].replace("|", "\\|") in card and info["backbone"] in card, name
    assert "text_alignment/mean" in card and "Random weights" in card and "random weights)" in card
    assert manifest["best_prompt"] in card and f"seeds, best first: {manifest['seeds'][0]}" in card
    result = json.loads((Path(manifest["origin"]["run"]) / "result.json").read_text())
    assert manifest["trainable"]["parameters"] == result["trainable_parameters"]  # trained only: no norm_temp
    assert f"{result['trainable_parameters']:,} trained parameters" in card
    assert manifest["source"]["n_frames"] == 4 and "- frames: 4 from frame 0, every 3, at 32x32" in card
    assert "shipped demo clip" in card and 'caption "a red ball is rolling left to right on the grass"' in card
    config = OmegaConf.load(folder / "config.yaml")
    assert "prompts" not in config.validation  # never rendered: prompts.overlap built the generation prompts
    assert list(config.prompts.generation_prompts) == manifest["prompts"]
    assert all(p in card for p in manifest["prompts"])
    modes = {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()}
    assert len(set(modes.values())) == 1, modes  # safetensors' 0600 made like the rest


@pytest.mark.slow
def test_policies_pick_as_documented(study):
    _, study = study
    trials = complete(study)
    assert select.trial_by_number(study, trials[-1].number).number == trials[-1].number
    weights = {"text_alignment/mean": 1.0, "style_probe/mean": 10.0}
    expected = max(trials, key=lambda t: sum(w * t.user_attrs["scores"][n] for n, w in weights.items()))
    assert select.best_weighted(study, weights).number == expected.number
    assert select.best_weighted(study, {"score": 1.0}).number == max(trials, key=lambda t: t.user_attrs["score"]).number
    front = {t.number for t in study.best_trials}
    assert select.best_pareto(study).number in front
    for index, name in enumerate(select.objective_names(study)):
        sign = 1 if study.directions[index] == optuna.study.StudyDirection.MAXIMIZE else -1
        best_on_it = max(study.best_trials, key=lambda t: sign * t.values[index])
        assert select.best_pareto(study, {name: 1.0}).number == best_on_it.number
    with pytest.raises(ValueError, match="not objectives"):
        select.best_pareto(study, {"nope/mean": 1.0})
    with pytest.raises(ValueError, match="no score"):
        select.best_weighted(study, {"nope/mean": 1.0})


@pytest.mark.slow
def test_pruned_or_failed_trials_are_refused(study, tmp_path):
    storage, study = study
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"failure": "boom"}))
    failed = study.trials[-1]
    with pytest.raises(ValueError, match=f"trial {failed.number} is fail: boom; export a complete trial"):
        select.trial_by_number(study, failed.number)
    for trial in study.get_trials(states=(TrialState.PRUNED,)):
        with pytest.raises(ValueError, match=f"trial {trial.number} is pruned"):
            select.trial_by_number(study, trial.number)
    done = run_cli("export.py", "--storage", storage, "--study", "tav-demo", "--trial", str(failed.number),
                   "--out", str(tmp_path / "x"))
    assert done.returncode == 1 and "export a complete trial" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_no_secret_reaches_any_exported_file(study, tmp_path, monkeypatch):
    _, study = study
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    selection = select.select_trial(study, complete(study)[0], "trial")
    config = json.loads(json.dumps(next(r for r in map(json.loads, (selection.run_dir / "log.jsonl").open())
                                        if r["kind"] == "config")["config"]))
    config["trial"]["storage"] = f"postgresql://tav:{SECRET}@db.example/tav"
    config["logger"]["api_key"] = SECRET
    config["notes"] = f"launched with token {SECRET}"
    export.write_export(selection, config, tmp_path / "export")
    for path in (tmp_path / "export").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_merged_unet_loads_back_with_the_tuned_weights(study, tmp_path):
    _, study = study
    selection = select.select_trial(study, complete(study)[0], "trial")
    config = next(r for r in map(json.loads, (selection.run_dir / "log.jsonl").open()) if r["kind"] == "config")
    manifest = export.write_export(selection, config["config"], tmp_path / "export", dtype="fp32", merge=True)
    merged = export.load_merged(tmp_path / "export" / "unet").unet.state_dict()
    tuned = export.tuned_unet(load_base_model("tiny"), manifest, tmp_path / "export" / "trainable.safetensors")
    assert any("attn_temp" in k for k in merged) and any("norm_temp" in k for k in merged)
    assert merged.keys() == tuned.unet.state_dict().keys()
    for name, tensor in tuned.unet.state_dict().items():
        torch.testing.assert_close(merged[name], tensor, rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_a_changed_base_model_is_refused(study, tmp_path, monkeypatch):
    _, study = study
    selection = select.select_trial(study, complete(study)[0], "trial")
    config = next(r for r in map(json.loads, (selection.run_dir / "log.jsonl").open()) if r["kind"] == "config")
    export.write_export(selection, config["config"], tmp_path / "export")
    loaded = export.load_export(tmp_path / "export")
    original = presets.tiny_unet
    monkeypatch.setattr(presets, "tiny_unet", lambda seed=0: original(seed + 1))
    with pytest.raises(ValueError, match="base model 'tiny' here has hash .* but the export was tuned on"):
        export.render(loaded, ["a cube"], [0], {}, torch.device("cpu"))
    manifest = json.loads((tmp_path / "export" / "export.json").read_text())
    manifest["base_model"]["hash"] = "0" * 64
    (tmp_path / "export" / "export.json").write_text(json.dumps(manifest))
    monkeypatch.undo()
    done = run_cli("generate.py", str(tmp_path / "export"), "prompt=a cube")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "use the same base model" in done.stderr


@pytest.mark.slow
def test_a_run_folder_exports_its_best_step_or_its_last_validation(study, tmp_path):
    _, study = study
    run_dir = Path(complete(study)[0].user_attrs["output_dir"])
    result = json.loads((run_dir / "result.json").read_text())
    assert export.select_run(run_dir).step == result["best_step"]
    unscored = tmp_path / "run"
    shutil.copytree(run_dir, unscored)
    result["best_step"] = None
    (unscored / "result.json").write_text(json.dumps(result))
    assert export.select_run(unscored).step == result["validations"][-1]["step"]


@pytest.mark.slow
def test_a_lora_run_exports_merges_and_renders_exactly(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("train.py", f"hydra.run.dir={run_dir}", "logger=none", "train.lora_rank=4", "train.max_steps=4",
                   "data.n_frames=4", "data.height=32", "data.width=32", "validation.every_n_steps=2",
                   "validation.inversion_steps=2", "validation.sampling_steps=2", "validation.batch_size=1",
                   "validation.noise_mix=0.3", "validation.keep_best_k=1", "metrics.scorer.flow_threads=1")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((run_dir / "result.json").read_text())
    kept = [v for v in result["validations"] if v["checkpoint"]]
    assert [v["step"] for v in kept] == [result["best_step"]] and len(result["validations"]) == 2
    assert all(Path(v["checkpoint"]).is_file() for v in kept)  # keep_best_k=1 deleted the other step's
    (gone,) = [v["step"] for v in result["validations"] if not v["checkpoint"]]
    with pytest.raises(FileNotFoundError, match=f"step {gone} .* is gone .* kept: \\[{result['best_step']}\\]"):
        export.select_run(run_dir, gone)
    config = next(r for r in map(json.loads, (run_dir / "log.jsonl").open()) if r["kind"] == "config")["config"]
    manifest = export.write_export(export.select_run(run_dir), config, tmp_path / "export", dtype="fp32", merge=True)
    assert manifest["trainable"]["lora_rank"] == 4 and manifest["origin"] == {"run": str(run_dir)}
    (clip,) = export.render(export.load_export(tmp_path / "export"), [manifest["best_prompt"]], manifest["seeds"][:1],
                            {}, torch.device("cpu"))
    stem = export.clip_stem(run_dir / "samples" / f"step_{manifest['step']:06d}", clip)
    assert write_mp4(clip.frames, tmp_path / "clip.mp4").read_bytes() == stem.with_suffix(".mp4").read_bytes()
    merged = export.load_merged(tmp_path / "export" / "unet")
    assert not any("lora" in name for name in merged.unet.state_dict())
