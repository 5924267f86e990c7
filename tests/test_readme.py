"""The README is executable: every train/sweep/export/generate/compare line from its usage section on runs here.

Each line runs as written from a scratch folder, with CPU-sized overrides appended (few frames, 32x32, two
steps, tiny sampling, one trial; the line's own flags unchanged, later overrides win in Hydra). Lines that need
real weights, a GPU or a database server are composed instead, in-process: as `train.py ... --cfg job`, or as
`sweep.py ... hydra.sweeper.dry_run=true` (the sweeper's own pre-flight: every trial composed and checked); a
line that is itself a dry run runs as typed. The first sweep's study is shared by the export, compare and
generate lines that read it, in README order.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sweep_compose import composed, planned

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINTS = ("train.py", "sweep.py", "export.py", "generate.py", "analysis/compare.py")
CPU_SIZED = ["data.n_frames=4", "data.height=32", "data.width=32", "validation.every_n_steps=2",
             "validation.inversion_steps=2", "validation.sampling_steps=2", "validation.seeds=[0,1]",
             "metrics.scorer.flow_threads=1", "prompts.edit_subjects=[cube]"]
TRAIN_SIZED = [*CPU_SIZED, "train.max_steps=2"]
SWEEP_SIZED = [*CPU_SIZED, "train.max_steps=int(interval(2,4))", "hydra.sweeper.n_trials=1"]
# Lines that need real weights (SD-1.x, a style file), several GPUs or a database server: composed, not run.
COMPOSE_ONLY = re.compile(r"experiment=tav_paper|model=(sd1|single_file)|postgresql|n_workers=")
SHARED_CLIP = ROOT.parent / "shared" / "videos" / "man-surfing.mp4"
CLIP = SHARED_CLIP if SHARED_CLIP.is_file() else ROOT / "tav" / "assets" / "demo.mp4"


def usage_lines() -> list[str]:
    """Every entrypoint command in the README's bash blocks from the usage section on (continuations joined)."""
    text = (ROOT / "README.md").read_text().split("## Usage", 1)[1]
    blocks = [part.split("```", 1)[0] for part in text.split("```bash")[1:]]
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    command = re.compile(r"^([A-Z_]+=\S+ )*python (%s)( |$)" % "|".join(map(re.escape, ENTRYPOINTS)))
    return [line for line in lines if command.match(line)]


def command_of(line: str, workdir: Path) -> tuple[list[str], dict]:
    """The line as argv (comment dropped, placeholders filled) and its environment."""
    words = shlex.split(line, comments=True)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}  # W&B must run offline here
    env["PYTHONPATH"] = str(ROOT)
    while "=" in words[0]:  # VAR=value python ...
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    assert words[0] == "python", line
    return [sys.executable, str(ROOT / words[1]), *[fill(a, workdir) for a in words[2:]]], env


def fill(arg: str, workdir: Path) -> str:
    """The README's placeholders: a real clip for /path/<name>.mp4, the latest train.py run for <date>/<time>."""
    arg = re.sub(r"/path/[\w.-]+\.mp4", str(CLIP), arg)
    if "<date>/<time>" in arg:
        runs = sorted(workdir.glob("outputs/runs/*/*"))
        assert runs, "a train.py line must run before this one"
        arg = arg.replace("outputs/runs/<date>/<time>", str(runs[-1].relative_to(workdir)))
    return arg


def sized(argv: list[str]) -> list[str]:
    script = Path(argv[1]).name
    if "hydra.sweeper.dry_run=true" in argv:
        return argv
    return argv + {"train.py": TRAIN_SIZED, "sweep.py": SWEEP_SIZED}.get(script, [])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def test_the_usage_block_names_every_entrypoint():
    lines = usage_lines()
    for name in ENTRYPOINTS:
        assert any(f"python {name}" in line for line in lines), name


def ids(line: str) -> str:
    return line.split("#")[0].strip()[:80]


@pytest.mark.parametrize("line", [line for line in usage_lines() if COMPOSE_ONLY.search(line)
                                  and "dry_run=true" not in line], ids=ids)
def test_readme_line_that_needs_weights_or_a_gpu_composes(line, monkeypatch, tmp_path):
    argv, env = command_of(line, tmp_path)
    for key in set(env) - set(os.environ):
        monkeypatch.setenv(key, env[key])
    overrides = [a for a in argv[2:] if a != "-m"]
    if Path(argv[1]).name == "train.py":
        cfg = composed(*overrides)
        assert cfg.train.max_steps >= 1 and cfg.model.source
    else:
        plan, protocol = planned(*overrides)
        assert plan.space.distributions and protocol["values"]["data.prompt"]


@pytest.mark.slow
@pytest.mark.parametrize("line", [line for line in usage_lines() if not COMPOSE_ONLY.search(line)
                                  or "dry_run=true" in line], ids=ids)
def test_readme_line_runs(line, workdir):
    argv, env = command_of(line, workdir)
    argv = sized(argv)
    done = subprocess.run(argv, cwd=workdir, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{shlex.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    script = Path(argv[1]).name
    if "hydra.sweeper.dry_run=true" in argv:
        assert "dry run:" in done.stdout + done.stderr
    elif script == "sweep.py":
        name = next((a.split("=", 1)[1] for a in argv if a.startswith("hydra.sweeper.study_name=")), "tav-demo")
        assert (workdir / "outputs" / "sweeps" / name / "sweep_summary.json").is_file()
    elif script == "export.py":
        out = workdir / argv[argv.index("--out") + 1]
        assert (out / "trainable.safetensors").is_file()
        if "--storage" in argv:  # the demo's study has one objective: its best trial, not a "Pareto point"
            assert json.loads((out / "export.json").read_text())["origin"]["policy"] == "best trial"
    elif script == "generate.py":
        assert list((workdir / argv[2] / "renders").glob("*.mp4"))
    elif script == "compare.py":
        page = (workdir / argv[argv.index("--out") + 1] / "index.html").read_text()
        trials = page[page.index("<table id='trials'>"):]
        assert trials[:trials.index("</table>")].count("<th>score</th>") == 1  # the objective is the best score
