"""Settings refused up front by the schema (tav/config_schema.py), in one line naming the key, the value and what
is accepted; and commands that print one line for a user error and write nothing they were pointed at by
mistake (tav/cli.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from safetensors.torch import save_file

import export as export_cli
import preloaded
import generate as generate_cli
from analysis import compare as compare_cli
from sweeps.space import parse_search_space
from tav.cli import CheckConfig, one_line, run_hydra
from tav.config_schema import ConfigError, check_sweep, check_value, check_weight_file, validate
from tav.data.demo import DEMO_VIDEO

ROOT = Path(__file__).resolve().parents[1]


def composed(*overrides: str, name: str = "train", hydra: bool = False):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra)


def refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as refused:
        validate(composed(*overrides))
    message = str(refused.value)
    assert "\n" not in message
    return message


# (override, what the one line must say: the key and value, and what is accepted)
REFUSED = [
    ("validation.guidance_scale=-3", ["validation.guidance_scale=-3", ">= 1", "exactly 1 turns", "off"]),
    ("validation.guidance_scale=0.5", ["validation.guidance_scale=0.5", ">= 1"]),
    ("data.height=30", ["data.height=30", "multiple of 8"]),
    ("data.width=0", ["data.width=0", "multiple of 8, at least 8"]),
    ("train.max_steps=0", ["train.max_steps=0", "integer >= 1"]),
    ("train.max_steps=-5", ["train.max_steps=-5", "integer >= 1"]),
    ("validation.every_n_steps=0", ["validation.every_n_steps=0", "integer >= 1"]),
    ("validation.noise_mix=2", ["validation.noise_mix=2", "[0, 1]"]),
    ("train.learning_rate=-1", ["train.learning_rate=-1", "> 0"]),
    ("train.learning_rate=0", ["train.learning_rate=0", "> 0"]),
    ("model=single_file", ["model.source is not set", "model.source=/path/file.safetensors"]),
    ("data.video=" + str(ROOT), ["data.video=" + str(ROOT), "is a directory, not a video file"]),
    ("data.video=/nowhere/clip.mp4", ["data.video=/nowhere/clip.mp4", "does not exist"]),
    ("data.prompt=''", ["data.prompt=''", "non-empty string"]),
    ("data.n_frames=0", ["data.n_frames=0", ">= 1"]),
    ("train.mixed_precision=fp32", ["train.mixed_precision=fp32", "one of no, fp16, bf16"]),
    ("train.frozen_dtype=int8", ["train.frozen_dtype=int8", "one of fp32, bf16, fp16"]),
    ("train.frozen_dtype=bf16", ["train.frozen_dtype=bf16 needs train.mixed_precision=bf16 or fp16"]),
    ("train.device=gpu", ["train.device=gpu", "one of auto, cuda, cpu"]),
    ("train.compile=maybe", ["train.compile=maybe", "true, false or auto"]),
    ("train.lr_scheduler=cosinus", ["train.lr_scheduler=cosinus", "scheduler name"]),
    ("train.adam_beta2=1", ["train.adam_beta2=1", "[0, 1)"]),
    ("validation.prompts=[]", ["validation.prompts=[]", "non-empty list"]),
    ("validation.seeds=[0,-1]", ["validation.seeds=[0,-1]", "integers >= 0"]),
    ("validation.sampling_steps=0", ["validation.sampling_steps=0", ">= 1"]),
    ("prompts.overlap=1.5", ["prompts.overlap=1.5", "[0, 1] or null"]),
    ("logger.mode=online-ish", ["logger.mode=online-ish", "auto, online, offline, disabled"]),
    ("metrics.scorer.precision=fp8", ["metrics.scorer.precision=fp8", "auto, fp32, fp16, bf16"]),
    ("+metrics.score_weights.beauty=1", ["metrics.score_weights.beauty names no score", "text_alignment"]),
    ("+train.max_stepz=3", ["train.max_stepz is not a setting", "max_steps"]),
    ("model.source=/nowhere/style.safetensors", ["model.source=/nowhere/style.safetensors", "does not exist"]),
    ("model.style_loras=[{path: /nowhere/lora.safetensors, scale: 0.8}]",
     ["model.style_loras.0.path=/nowhere/lora.safetensors", "is not an existing .safetensors file"]),
    # the default experiment (the toy world's) scores with the world's ground truth, meaningless for another model
    ("model=tiny", ["metrics=world", "model.source=tiny", "add experiment=tav_paper", "metrics=tiny for a CPU check"]),
]


@pytest.mark.parametrize("override, says", REFUSED, ids=[o for o, _ in REFUSED])
def test_a_bad_setting_is_refused_in_one_line_naming_key_value_and_what_is_accepted(override, says):
    message = refusal(override)
    for words in says:
        assert words in message, message


def test_a_clip_that_cannot_be_read_or_is_too_short_is_refused_before_the_run(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    message = refusal(f"data.video={bad}")
    assert f"cannot read video {bad}" in message and "point data.video at another file" in message, message
    message = refusal("data.n_frames=30")  # the demo clip has 24 frames, sampled every 3rd by default
    assert "demo.mp4 has 24 frames but start=0, stride=3, n_frames=30 needs 88; lower data.n_frames" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_cuda_device_is_refused():
    assert "train.device=cpu or auto" in refusal("train.device=cuda")


@pytest.mark.parametrize("override, says", [
    ("train.max_steps=abc", "could not be converted to Integer; train.max_steps takes an integer >= 1"),
    ("validation.guidance_scale=high", "could not be converted to Float; validation.guidance_scale takes a number >= 1"),
    ("data.video=[a]", "data.video takes a string or null"),
])
def test_a_value_of_the_wrong_type_is_refused_while_hydra_composes(override, says):
    with pytest.raises(ConfigCompositionException) as refused:
        composed(override)
    line = one_line(refused.value)
    assert "\n" not in line and override in line and says in line, line


def test_a_misspelled_key_is_refused_while_hydra_composes():
    with pytest.raises(ConfigCompositionException) as refused:
        composed("train.max_stepz=3")
    line = one_line(refused.value)
    assert "\n" not in line and "max_stepz" in line and "tav/config_schema.py" in line


# Files must exist (their content is checked on loading): CLIP weights and a single-file model are stand-ins.
WEIGHTS = Path(__file__)
REAL_CLIP = ["experiment=tav_paper", f"data.video={DEMO_VIDEO}", f"metrics.scorer.pretrained={WEIGHTS}"]
SHIPPED = [[], ["logger=none"], ["~metrics"], [*REAL_CLIP, "model=sd14"], [*REAL_CLIP, "model=sd15"],
           ["metrics=default", f"metrics.scorer.pretrained={WEIGHTS}"],
           ["data=man_surfing", f"data.video={DEMO_VIDEO}"],
           ["experiment=tav_paper", f"data.video={DEMO_VIDEO}", f"metrics.scorer.pretrained={WEIGHTS}"],
           [*REAL_CLIP, "model=single_file", f"model.source={DEMO_VIDEO.with_suffix('.safetensors')}"],
           ["experiment=tav_paper", "speed=fast", f"data.video={DEMO_VIDEO}", f"metrics.scorer.pretrained={WEIGHTS}"],
           ["experiment=tav_paper", "speed=memory", f"data.video={DEMO_VIDEO}",
            f"metrics.scorer.pretrained={WEIGHTS}"]]


def hub_cache_with(cache: Path, repo_id: str) -> None:
    """A stand-in of a hub model in a Hugging Face cache folder: its main revision's model_index.json."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "model_index.json").write_text("{}")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("0" * 40)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, in place of this machine's."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("overrides", SHIPPED, ids=lambda o: " ".join(x.split("=")[0] for x in o) or "default")
def test_every_shipped_config_is_accepted(overrides, tmp_path, hub_cache):
    overrides = [f"model.source={tmp_path / 'style.safetensors'}" if o.startswith("model.source=") else o
                 for o in overrides]
    save_file({"stand_in": torch.zeros(1)}, str(tmp_path / "style.safetensors"))  # its header is read, not its weights
    for name in ("train", "sweep"):
        config = composed(*overrides, name=name)
        if "/" in config.model.source and not Path(config.model.source).exists():  # sd14, sd15: hub ids
            hub_cache_with(hub_cache, config.model.source)
        validate(config)


def test_a_truncated_single_file_model_or_style_lora_is_refused_before_the_run(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    real = [*REAL_CLIP[:2], f"metrics.scorer.pretrained={WEIGHTS}"]
    assert refusal(*real, "model=single_file", f"model.source={junk}").startswith(
        f"model.source={junk} is not a readable .safetensors file (")
    message = refusal(f"model.style_loras=[{{path: {junk}, scale: 0.8}}]")
    assert message.startswith(f"model.style_loras.0.path={junk} is corrupt or truncated (") and message.endswith(
        "download it again, or point model.style_loras.0.path at another file")


def test_a_base_model_that_is_not_on_this_machine_is_refused_before_the_run(tmp_path, hub_cache):
    real = [*REAL_CLIP[:2], f"metrics.scorer.pretrained={WEIGHTS}"]
    assert refusal(*real, "model=sd15") == (
        "model.source=stable-diffusion-v1-5/stable-diffusion-v1-5 is not in the Hugging Face cache, and nothing is "
        "downloaded here; download it first (hf download stable-diffusion-v1-5/stable-diffusion-v1-5) or set "
        "model.source to a local folder or file")
    hub_cache_with(hub_cache, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    validate(composed(*real, "model=sd15"))
    assert "is not a diffusers model folder (no model_index.json)" in refusal(*real, f"model.source={tmp_path}")


def test_a_speed_preset_applies_after_the_experiment():
    """The official recipe checkpoints; speed=fast turns it off, speed=memory keeps it with the compiled blocks."""
    assert composed("experiment=tav_paper").train.gradient_checkpointing
    fast = composed("experiment=tav_paper", "speed=fast").train
    memory = composed("experiment=tav_paper", "speed=memory").train
    assert not fast.gradient_checkpointing and fast.compile == "auto"
    assert memory.gradient_checkpointing and memory.compile == "auto" and memory.compile_mode == "regional"
    assert memory.frozen_dtype == fast.frozen_dtype == "bf16"


def test_missing_clip_weights_are_refused_before_any_model_loads():
    message = refusal("metrics=default", "metrics.scorer.pretrained=/nowhere/clip.bin")
    assert "pretrained='/nowhere/clip.bin' (metrics.scorer.pretrained) is neither a file nor an open_clip tag" in message


def test_the_schema_types_every_group_node():
    cfg = composed()
    assert OmegaConf.get_type(cfg.train).__name__ == "TrainConfig"
    assert OmegaConf.get_type(cfg.metrics.scorer).__name__ == "ScorerConfig"
    assert composed("~metrics").metrics is None  # no metrics group: clips are rendered, not scored


def test_the_schema_holds_exactly_what_the_library_takes():
    import inspect
    from dataclasses import fields

    from tav.config_schema import LoggerConfig, ScorerConfig, TrainConfig, ValidationConfig
    from tav.metrics import build_scorer
    from tav.tracking import RunTracker
    from tav.train import TrainSettings
    from tav.validation import ValidationSettings

    def names(cls):
        return {f.name for f in fields(cls)}

    assert names(TrainConfig) == names(TrainSettings)
    assert names(ValidationConfig) == names(ValidationSettings)
    assert names(ScorerConfig) == set(inspect.signature(build_scorer).parameters) - {"device"}
    assert names(LoggerConfig) <= set(inspect.signature(RunTracker).parameters)


def test_check_value_checks_one_key_as_the_config_would():
    check_value("validation.noise_mix", 0.5)
    check_value("model", "sd15")  # config groups and unknown keys are Hydra's to check
    with pytest.raises(ConfigError, match=r"^train.max_steps=40.5 is not accepted .*integer >= 1$"):
        check_value("train.max_steps", 40.5)
    with pytest.raises(ConfigError, match=r"^seed=-1 is not accepted; seed takes an integer >= 0$"):
        check_value("train.seed", -1, name="seed")


@pytest.mark.parametrize("space_file", sorted((ROOT / "conf" / "search").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_search_space_stays_inside_the_schema(space_file):
    params = dict(OmegaConf.load(space_file).get("params", {}))
    space = parse_search_space(params)
    check_sweep(space.distributions, space.fixed, composed(name="sweep"))


@pytest.mark.parametrize("entry, says", [
    ("interval(-1, 1e-4)", "search space 'train.learning_rate' reaches outside"),
    ("choice(1e-4, 0)", "train.learning_rate=0 is not accepted"),
    ("abc", "train.learning_rate=abc is not accepted"),
])
def test_a_searched_range_leaving_the_schema_is_refused(entry, says):
    space = parse_search_space({"train.learning_rate": entry})
    with pytest.raises(ConfigError, match="takes a number > 0") as refused:
        check_sweep(space.distributions, space.fixed)
    assert says in str(refused.value)


def test_a_searched_key_is_judged_by_its_range_not_its_base_value():
    space = parse_search_space({"validation.guidance_scale": "interval(5.0, 15.0)"})
    check_sweep(space.distributions, space.fixed, composed("validation.guidance_scale=0.5", name="sweep"))
    with pytest.raises(ConfigError, match="train.max_steps=0"):
        check_sweep(space.distributions, space.fixed, composed("train.max_steps=0", name="sweep"))


def test_a_sweep_folder_that_cannot_be_made_is_refused_before_any_trial(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="hydra.sweep.dir=.* cannot be created: .*file is a file"):
        check_sweep({}, {}, composed(f"hydra.sweep.dir={tmp_path}/file/sweep", name="sweep", hydra=True))


def test_a_run_is_refused_before_its_folder_is_made(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for override, says in [("validation.noise_mix=2", "validation.noise_mix=2.0 is not accepted"),
                           (f"hydra.run.dir={tmp_path}/file/run", "is a file; set hydra.run.dir to a writable folder")]:
        with pytest.raises(SystemExit) as stopped:
            CheckConfig().on_run_start(composed(override, hydra=True))
        assert stopped.value.code == 1
        assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return preloaded.run([sys.executable, *args], env={**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": ""},
                         timeout=300)


def assert_one_line(done: subprocess.CompletedProcess, says: str) -> None:
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().count("\n") == 0 and says in done.stderr, done.stderr


@pytest.mark.slow
def test_train_py_refuses_a_bad_setting_in_one_line_and_writes_nothing(tmp_path):
    assert_one_line(cli("train.py", "validation.guidance_scale=-3", f"hydra.run.dir={tmp_path}/run"),
                    "train.py: validation.guidance_scale=-3.0 is not accepted")
    assert not (tmp_path / "run").exists()


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="train")
def train_main(cfg) -> None:  # train.py's main, as far as composition goes
    raise AssertionError("a config that fails to compose never reaches the job")


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="sweep")
def sweep_main(cfg) -> None:
    raise AssertionError("a refused search space never reaches a trial")


def run_hydra_as_typed(main, argv: list[str], monkeypatch) -> int:
    """`python <argv>` in-process through run_hydra, as the entrypoints' __main__ blocks run it."""
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "")  # run_hydra sets it; monkeypatch puts it back
    monkeypatch.setenv("TAV_ONE_LINE_ERRORS", "")
    try:
        return run_hydra(main, argv[0])
    finally:
        GlobalHydra.instance().clear()


def test_a_misspelled_search_key_is_one_line_before_any_trial(tmp_path, monkeypatch, capsys):
    argv = ["sweep.py", "-m", "trian.max_steps=int(interval(1, 3))", f"hydra.sweep.dir={tmp_path}/sweep"]
    assert run_hydra_as_typed(sweep_main, argv, monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "trian.max_steps" in err, err  # the sweeper's line
    assert not (tmp_path / "sweep").exists()


def test_a_composition_error_is_folded_into_one_line(tmp_path, monkeypatch, capsys):
    argv = ["train.py", "train.max_steps=abc", f"hydra.run.dir={tmp_path}/run"]
    assert run_hydra_as_typed(train_main, argv, monkeypatch) == 1
    err = capsys.readouterr().err
    assert err == ("train.py: Error merging override train.max_steps=abc; Value 'abc' of type 'str' could not be "
                   "converted to Integer; train.max_steps takes an integer >= 1\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_sweep_py_refuses_a_range_outside_the_schema_before_any_trial(tmp_path):
    done = cli("sweep.py", "-m", "train.learning_rate=interval(-1, 1e-4)", f"hydra.sweep.dir={tmp_path}/sweep")
    assert_one_line(done, "train.learning_rate=-1.0 is not accepted; train.learning_rate takes a number > 0")
    assert not (tmp_path / "sweep").exists()  # no study.db, no trial folder


def test_read_only_commands_never_create_a_missing_study_database(tmp_path, capsys):
    missing = tmp_path / "typo" / "study.db"
    assert export_cli.main(["--storage", f"sqlite:///{missing}", "--out", str(tmp_path / "out")]) == 1
    assert f"no study database at {missing}" in capsys.readouterr().err
    assert compare_cli.main(["--storage", f"sqlite:///{missing}", "--out", str(tmp_path / "cmp")]) == 1
    assert f"no study database at {missing}" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []


def test_a_database_that_cannot_be_reached_is_one_line_with_its_password_masked(tmp_path, monkeypatch, capsys):
    url = "postgresql://tav:sekret@127.0.0.1:9/optuna"  # nothing listens on the discard port
    says = "storage=postgresql://tav:***@127.0.0.1:9/optuna: "
    argv = ["sweep.py", "-m", f"hydra.sweeper.storage={url}", f"hydra.sweep.dir={tmp_path}/sweep"]
    assert run_hydra_as_typed(sweep_main, argv, monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: hydra.sweeper." + says) and err.count("\n") == 1 and "sekret" not in err, err
    assert not list((tmp_path / "sweep").glob("trial_*"))
    for main in (export_cli.main, compare_cli.main):
        assert main(["--storage", url, "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert "--" + says in err and err.count("\n") == 1 and "sekret" not in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("main, argv", [(export_cli.main, ["--storage", "a", "--run", "b", "--out", "c"]),
                                        (export_cli.main, ["--run", "b", "--out", "c", "--trial", "x"]),
                                        (compare_cli.main, ["--out", "c"])])
def test_a_bad_argument_is_one_line(main, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "--help" in err, err


def fake_run(run_dir: Path) -> Path:
    """A finished run folder whose one checkpoint has a truncated inverted_latents.safetensors."""
    checkpoint = run_dir / "checkpoints" / "step_000002"
    checkpoint.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(checkpoint / "trainable.safetensors"))
    save_file({"inverted_latents": torch.zeros(1, 4, 2, 4, 4)}, str(checkpoint / "inverted_latents.safetensors"))
    data = (checkpoint / "inverted_latents.safetensors").read_bytes()
    (checkpoint / "inverted_latents.safetensors").write_bytes(data[:len(data) // 2])
    clip = {"prompt": "a cube", "seed": 0, "mp4": "x.mp4", "gif": "x.gif", "scores": {}}
    (run_dir / "result.json").write_text(json.dumps({
        "validations": [{"step": 2, "score": None, "scores": {}, "clips": [clip],
                         "checkpoint": str(checkpoint / "trainable.safetensors")}],
        "best_step": None, "random_weights": True, "extra": {}}))
    return checkpoint


def test_a_corrupt_checkpoint_is_named_and_no_export_folder_is_made(tmp_path, capsys):
    checkpoint = fake_run(tmp_path / "run")
    assert export_cli.main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{checkpoint / 'inverted_latents.safetensors'} is corrupt or truncated" in err and "--trial N" in err
    assert not (tmp_path / "out").exists()


def test_generate_refuses_an_empty_prompt_a_bad_setting_and_a_corrupt_export(tmp_path, capsys):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "export.json").write_text("{}")
    save_file({"inverted_latents": torch.zeros(2)}, str(folder / "inverted_latents.safetensors"))
    (folder / "trainable.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")  # cut off in the header
    for argv, says in [([str(folder), "prompt="], "prompt is empty (null); prompt takes a non-empty string"),
                       ([str(folder), "prompts=[]"], "prompts=[] is not accepted"),
                       ([str(folder), "prompt=a cat", "guidance_scale=-3"], "guidance_scale=-3 is not accepted"),
                       ([str(folder), "prompt=a cat", "seeds=[0,x]"], "seeds=[0,x] is not accepted"),
                       ([str(folder), "prompt=a cat", "seeds=[0,"], "generate: ParserError: while parsing"),
                       ([str(folder), "prompt=a cat"], "trainable.safetensors is corrupt or truncated"),
                       ([str(folder), "prompt=a cat", f"out={folder}/export.json/renders"], "out=")]:
        assert generate_cli.main(argv) == 1
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "inverted_latents.safetensors",
                                                         "trainable.safetensors"]


def test_check_weight_file_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing; train again"):
        check_weight_file(tmp_path / "trainable.safetensors", "train again")
