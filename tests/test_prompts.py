from __future__ import annotations

import json
import logging
import re
import shlex
import sys
from pathlib import Path

import pytest

import preloaded
from tav.data.demo import DEMO_PROMPT
from tav.prompts import (build_prompts, level_prompts, main, measure_overlap, overlap_levels, prompts_by_level,
                         search_choice)

SURFING = dict(source_subject="man", edit_subject="astronaut", target_style="in clip art style")
ROOT = Path(__file__).resolve().parents[1]
DEMO = "a red ball is rolling on the grass"


def surfing(overlap: float, **changes):
    return build_prompts("a man is surfing", overlap, **{**SURFING, **changes})


def test_overlap_one_is_the_caption_with_the_edit_and_zero_the_edit_subject_alone():
    assert surfing(1.0).generation_prompt == "an astronaut is surfing in clip art style"
    assert surfing(0.0).generation_prompt == "an astronaut in clip art style"
    assert (surfing(1.0).overlap_measured, surfing(0.0).overlap_measured) == (1.0, 0.0)
    assert surfing(1.0).kept_words == ("surfing",) and surfing(0.0).dropped_words == ("surfing",)


def test_the_training_prompt_is_the_caption_unless_a_source_style_is_asked_for():
    assert surfing(0.5).train_prompt == "a man is surfing"
    styled = surfing(1.0, source_style="a photo of")
    assert styled.train_prompt == "a photo of a man is surfing"
    assert styled.generation_prompt == "an astronaut is surfing in clip art style"  # the source style stays out


@pytest.mark.parametrize("caption, subject, edit, prompts", [
    (DEMO, "red ball", "cube", ["a cube", "a cube is rolling", "a cube is rolling on the grass"]),
    (DEMO, "ball", "cube", ["a cube", "a cube is rolling", "a cube is rolling on the grass",
                            "a red cube is rolling on the grass"]),  # the modifier goes first
    ("a man is surfing a big wave", "man", "boy", ["a boy", "a boy is surfing a big wave"]),  # no "a big"
    ("a ball rolls across the screen", "ball", "cube", ["a cube", "a cube rolls", "a cube rolls across the screen"]),
    ("a boy, wearing a birthday hat, is surfing", "boy", "panda",
     ["a panda", "a panda, wearing a birthday hat", "a panda, wearing a birthday hat, is surfing"]),
    ("a man is surfing", "man", "panda man", ["a panda man", "a panda man is surfing"]),  # a hybrid when asked
    ("a man is surfing", "man", "an astronaut", ["an astronaut", "an astronaut is surfing"]),
])
def test_every_level_reads_as_a_whole_phrase(caption, subject, edit, prompts):
    pairs = level_prompts(caption, source_subject=subject, edit_subject=edit)
    assert [p.generation_prompt for p in pairs] == prompts


def test_levels_are_distinct_prompts_and_requests_pick_the_nearest_level():
    assert overlap_levels(DEMO, "red ball") == [0.0, 0.5, 1.0]
    assert overlap_levels("a man is surfing", "man") == [0.0, 1.0]
    assert overlap_levels("a man", "man") == [1.0]
    levels = overlap_levels(DEMO, "ball")
    assert levels == pytest.approx([0, 1 / 3, 2 / 3, 1])
    prompts = {r: build_prompts(DEMO, r, source_subject="ball", edit_subject="cube").generation_prompt
               for r in (0.0, 0.33, 0.34, 0.5, 0.67, 0.8, 0.84, 1.0)}
    assert len({prompts[r] for r in (0.0, 0.33, 0.67, 1.0)}) == 4  # the search-space choices: no duplicates
    assert prompts[0.33] == prompts[0.34] and prompts[0.67] == prompts[0.8]
    assert prompts[0.5] == prompts[0.67]  # a tie goes to the higher level
    assert prompts[0.84] == prompts[1.0]
    assert search_choice(levels) == "choice(0.0, 0.33, 0.67, 1.0)"


def test_style_only_edit_keeps_the_subject():
    pair = build_prompts("a man is surfing", 0.0, source_subject="man", edit_subject="man",
                         target_style="in clip art style")
    assert pair.generation_prompt == "a man in clip art style"


def test_record_is_json_ready_and_holds_both_prompts_and_overlaps():
    record = surfing(1.0, source_style="a photo of").as_record()
    assert json.loads(json.dumps(record)) == record
    assert record["train_prompt"] == "a photo of a man is surfing"
    assert record["generation_prompt"] == "an astronaut is surfing in clip art style"
    assert (record["overlap_requested"], record["overlap_measured"]) == (1.0, 1.0)
    assert record["token_jaccard"] == pytest.approx(1 / 7)  # {photo man surfing} vs {astronaut surfing clip art style}


def test_measured_overlap_of_identical_prompts_is_one():
    assert measure_overlap("a man is surfing", "a man is surfing") == 1.0


def test_measured_overlap_ignores_stop_words_and_case():
    assert measure_overlap("a man is surfing", "The Man, surfing.") == 1.0


def test_measured_overlap_of_disjoint_content_is_zero():
    assert measure_overlap("a man is surfing", "a cat in the garden") == 0.0


def test_measured_overlap_without_content_words_is_an_error():
    with pytest.raises(ValueError, match="has a content word"):
        measure_overlap("a", "of the")


@pytest.mark.parametrize("caption, overlap, subject, message", [
    ("a man is surfing", 1.5, "man", "prompts.overlap is 1.5; pass a share between 0 and 1"),
    ("a man is surfing", -0.1, "man", "prompts.overlap is -0.1"),
    ("   ", 0.5, "man", "the caption\\) is empty"),
    ("a man is surfing", 0.5, "boy", "prompts.source_subject 'boy' is not in the caption 'a man is surfing'"),
    ("a man is surfing", 0.5, "a", "prompts.source_subject is 'a'; name the caption's subject"),
    ("a man is surfing", 0.5, None, "prompts.source_subject is 'None'"),
])
def test_bad_arguments_are_named(caption, overlap, subject, message):
    with pytest.raises(ValueError, match=message):
        build_prompts(caption, overlap, source_subject=subject, edit_subject="astronaut")


def test_empty_edit_subject_is_named():
    with pytest.raises(ValueError, match="prompts.edit_subjects holds an empty subject"):
        build_prompts("a man is surfing", 0.5, source_subject="man", edit_subject=" ")


def test_the_levels_command_prints_the_prompts_and_the_search_line(capsys):
    # README "Your own video" runs this command.
    assert main(["a man is surfing", "--subject", "man", "--edit", "astronaut", "--style", "in clip art style"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["training prompt: a man is surfing",
                   "overlap 0.000: an astronaut in clip art style",
                   "overlap 1.000: an astronaut is surfing in clip art style",
                   "search space line:  prompts.overlap: choice(0.0, 1.0)"]


# train.py's resolve_prompts: what a run renders from its config, and the warnings where a setting is unused.

def composed(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def resolved(caplog, *overrides: str):
    from train import resolve_prompts

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tav"):
        return resolve_prompts(composed(*overrides)), [r.getMessage() for r in caplog.records]


def test_the_demo_renders_its_caption_with_the_edit_at_overlap_one(caplog):
    (train_prompt, prompts, record), warnings = resolved(caplog)
    assert train_prompt == DEMO_PROMPT and warnings == []
    # the world's model draws clip art unless told otherwise, so the demo adds no style words: its style-only
    # edit is the training prompt itself, the case the seed story says stays photographic after tuning
    assert prompts == [DEMO_PROMPT, "a purple cube is rolling left to right on the grass"]
    assert record["overlap_levels"] == [0.0, 0.5, 0.75, 1.0] and record["overlap_measured"] == 1.0


def test_your_own_video_setup_from_the_readme(caplog):
    (train_prompt, prompts, record), warnings = resolved(
        caplog, "data=man_surfing", "data.video=/clips/man-surfing.mp4", "prompts.overlap=0.0",
        "prompts.source_subject=man", "prompts.edit_subjects=[astronaut]", "prompts.target_style=in clip art style")
    assert (train_prompt, prompts, warnings) == ("a man is surfing", ["an astronaut in clip art style"], [])


def test_prompt_settings_ignored_while_overlap_is_null_warn(caplog):
    (_, prompts, _), warnings = resolved(caplog, "prompts.overlap=null")
    assert prompts == ["a blue ball is rolling on the grass"]  # validation.prompts
    assert len(warnings) == 1 and "prompts.source_subject, prompts.edit_subjects" in warnings[0]
    assert "prompts.overlap is null, so unused" in warnings[0]


def test_the_official_recipe_as_typed_does_not_warn_of_the_prompts_it_sets_for_sweeps():
    from train import prompt_warnings

    cfg = composed("experiment=tav_paper", "data.video=/clips/man-surfing.mp4")
    typed = {"experiment", "data.video"}
    assert prompt_warnings(cfg, typed) == []  # its prompts.* are search=tav_paper's material
    warnings = prompt_warnings(cfg, typed | {"prompts.edit_subjects"})  # the user's own, unused: said
    assert len(warnings) == 1 and warnings[0].startswith("prompts.edit_subjects set but prompts.overlap is null")


def test_a_real_clip_with_the_demos_prompts_warns(caplog):
    _, warnings = resolved(caplog, "data.video=/clips/mine.mp4")
    assert len(warnings) == 1 and "data.prompt is still the demo's caption" in warnings[0]
    _, warnings = resolved(caplog, "data.video=/clips/mine.mp4", "data.prompt=a man is surfing", "prompts.overlap=null",
                           "prompts.source_subject=null", "prompts.edit_subjects=[]", "prompts.target_style=''")
    assert len(warnings) == 1 and "validation.prompts are the demo's" in warnings[0]


def test_an_overlap_that_is_not_a_level_of_the_caption_warns_with_the_levels(caplog):
    (_, prompts, _), warnings = resolved(caplog, "prompts.overlap=0.9")
    assert prompts[1] == "a purple cube is rolling left to right on the grass"  # the nearest, 1.0
    assert warnings == [f"prompts.overlap=0.9 is not a level of '{DEMO_PROMPT}', so it renders the nearest one; "
                        "search over its levels: prompts.overlap=choice(0.0, 0.5, 0.75, 1.0)"]
    _, warnings = resolved(caplog, "prompts.overlap=0.5")
    assert warnings == []


def test_overlap_without_edit_subjects_is_an_error_naming_the_key(caplog):
    with pytest.raises(ValueError, match="prompts.edit_subjects is empty"):
        resolved(caplog, "prompts.edit_subjects=[]")


# README "Your own video": its commands, as written, CPU-sized.

def readme_commands(start: str) -> list[str]:
    section = re.split(r"\n##+ ", (ROOT / "README.md").read_text().split("## Your own video")[1])[0]
    return [line for line in section.splitlines() if line.startswith(start)]


def test_the_readme_levels_command_prints_what_the_readme_shows(capsys):
    (command,) = readme_commands("python -m tav.prompts")
    assert main(shlex.split(command)[3:]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() in (ROOT / "README.md").read_text()


def readme_cpu_check() -> tuple[list[str], list[str], list[str]]:
    """The README's CPU check of its Your own video lines: the overrides for both, for the run, for the sweep."""
    section = (ROOT / "README.md").read_text().split("## Your own video")[1]
    paragraph = section[section.index("To check the whole path on a CPU first"):].split("\n\n")[0]
    both, run, sweep = (shlex.split(" ".join(span.split())) for span in re.findall(r"`([^`]+)`", paragraph)[:3])
    return both, run, sweep


@pytest.mark.slow
def test_the_readme_run_and_sweep_on_a_real_clip_pass_its_cpu_check(shared_video, tmp_path):
    both, run, sweep = readme_cpu_check()
    assert {"model=tiny", "metrics=tiny", "train.device=cpu"} <= set(both)
    quiet = ["validation.seeds=[0]", "metrics.scorer.flow_threads=1", "logger=none"]  # this test's own: 1 core, offline
    (train_line,) = readme_commands("python train.py")
    (sweep_line,) = readme_commands("python sweep.py")
    # A searched max_steps: the baseline trial would put back the official 500 over a fixed one.
    for line, extra in ((train_line, [*run, f"hydra.run.dir={tmp_path / 'run'}"]),
                        (sweep_line, [*sweep, f"hydra.sweep.dir={tmp_path}"])):
        command = [sys.executable, *[a.replace("/path/man-surfing.mp4", str(shared_video))
                                     for a in shlex.split(line)[1:]], *both, *quiet, *extra]
        done = preloaded.run(command, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "demo's" not in done.stdout + done.stderr  # no warning: the caption and prompts are the clip's
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["extra"]["generation_prompts"] == ["an astronaut is surfing in clip art style"]
    assert result["extra"]["train_prompt"] == "a man is surfing"
    trial = json.loads((tmp_path / "sweep_summary.json").read_text())["trials"][0]
    assert trial["state"] == "complete" and trial["params"]["prompts.overlap"] in (0.0, 1.0)


def test_prompts_by_level_names_what_each_requested_overlap_renders_once_per_level():
    by_level = prompts_by_level("a man is surfing", [1.0, 0.0, 0.9], source_subject="man",
                                edit_subjects=["panda", "boy"], target_style="in clip art style")
    assert by_level == {0.0: ["a panda in clip art style", "a boy in clip art style"],
                        1.0: ["a panda is surfing in clip art style", "a boy is surfing in clip art style"]}
