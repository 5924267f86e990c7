"""analysis/compare.py: one HTML page to choose a trial from, rendered in a real (headless) browser."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import preloaded

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium (.ci/run installs it); Playwright drives it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return preloaded.run([sys.executable, *args], env={**os.environ, "WANDB_MODE": "disabled"}, timeout=300)


@pytest.fixture(scope="module")
def report(study_storage, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    done = run_cli("analysis/compare.py", "--storage", study_storage, "--study", "tav-demo", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done


@pytest.mark.slow
def test_the_page_holds_the_table_clips_breakdowns_and_plots(report, study_storage):
    out, done = report
    study = optuna.load_study(study_name="tav-demo", storage=study_storage)
    for name in ("score_vs_step.png", "score_vs_params.png", "seed_spread.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (out / "index.html").read_text()
    assert "class='banner'><b>Random weights.</b>" in page
    table = page[page.index("<table id='trials'>"):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 1 + len(study.trials)
    for column in ("Pareto", "text_alignment/mean", "prompts", "train.learning_rate", "prompts.overlap", "links"):
        assert f"<th>{column}</th>" in table
    assert table.count("<th>score</th>") == 1  # the best step's weighted score, beside the objectives
    assert table.count("&#9733;") == len(study.best_trials)
    assert "a purple cube is rolling" in table  # the realised generation prompts
    assert table.count("/wandb/offline-run-") == len(study.trials)  # each trial links its offline W&B run
    assert "class='scores_by_prompt'" in page and "class='scores_by_seed'" in page
    assert "random weights" in done.stdout  # the printed study table says so too


@pytest.mark.slow
def test_the_page_loads_in_a_browser_without_errors_and_plays_its_clips(report):
    if not CHROMIUM.is_file() or shutil.which("chromium") is None:
        pytest.skip("no chromium here (Debian: apt-get install chromium; .ci/run does it)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    out, _ = report
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto((out / "index.html").as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth, e.naturalHeight])")
        finally:
            browser.close()
    assert problems == []
    clips = [i for i in images if i[0].startswith("clips/")]
    assert any(i[0].startswith("clips/source_") for i in clips)  # the source clip beside the trials' clips
    assert len([i for i in clips if not i[0].startswith("clips/source_")]) >= 2
    assert all(complete and width > 0 and height > 0 for _, complete, width, height in images), images
    assert {i[0] for i in images} >= {"score_vs_step.png", "score_vs_params.png", "seed_spread.png"}


@pytest.mark.slow
def test_an_unknown_study_is_one_clear_line(study_storage, tmp_path):
    done = run_cli("analysis/compare.py", "--storage", study_storage, "--study", "nope", "--out", str(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no study 'nope'" in done.stderr and "tav-demo" in done.stderr


@pytest.mark.slow
def test_the_readme_sync_line_uploads_every_run_of_a_sweep(small_sweep):
    (line,) = [x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("wandb sync ")]
    patterns = [p.replace("outputs/sweeps/tav-demo/", "") for p in line.split("#")[0].split()[2:]]
    synced = {p for pattern in patterns for p in small_sweep.glob(pattern)}
    runs = set(small_sweep.rglob("offline-run-*"))
    assert synced == runs and len(runs) == 3 + 1  # every trial's run and the study-summary run


@pytest.mark.slow
def test_a_sweeps_console_shows_progress_not_known_library_notices(small_sweep):
    console = (small_sweep / "console.txt").read_text()
    assert re.search(r"trial 0 \(\d+ of 3 done\) complete", console) and "Pareto-optimal" in console
    for notice in ("ExperimentalWarning", "Heartbeat of storage", "No pretrained weights loaded", "Traceback"):
        assert notice not in console, notice
    # The rejected key (conftest.py) cost no trial: one line per run, the 3 trials' and the study summary's.
    assert console.count("W&B runs offline (") == 3 + 1
