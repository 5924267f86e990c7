from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from sweeps.live_trial import LiveTrial
from sweeps.summary import summarize, summary_table
from sweeps.study import StudySpec, build_sampler, create_study, open_storage
from tav.events import RenderedClip, ValidationEvent
from tav.media import write_mp4

OBJECTIVES = {"text_alignment/mean": "maximize", "style_probe/mean": "maximize"}


def event(step: int, score: float, tmp_path: Path, random_model: bool = True,
          random_scorer: bool = False) -> ValidationEvent:
    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    clips = [RenderedClip("a cube", seed, frames, write_mp4(frames, tmp_path / f"{step}_{seed}.mp4"),
                          tmp_path / "c.gif", {"text_alignment": score + seed, "style_probe": 0.5, "score": score + seed})
             for seed in (0, 1)]
    e = ValidationEvent(step, clips, torch.zeros(2, 8, 8, 3, dtype=torch.uint8), "a ball", tmp_path / "w.safetensors",
                        tmp_path, torch.device("cpu"), random_weights=random_model)
    e.scores = {"text_alignment/mean": score, "style_probe/mean": 0.5}
    e.score_info = {name: {"backbone": "ViT-L-14", "random_weights": random_scorer}
                    for name in ("text_alignment", "style_probe")}
    e.score = score
    return e


def make_study(tmp_path, single_objective: bool, full_panel: str = "above_median"):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = StudySpec(OBJECTIVES, single_objective, {}, {"name": "MedianPruner", "n_startup_trials": 2,
                                                         "n_warmup_steps": 0}, full_panel)
    study = create_study(open_storage(url), "s", spec, build_sampler({"name": "RandomSampler", "seed": 0}, {}))
    return url, study


def run_trial(url, scores, tmp_path, random_model: bool = True, random_scorer: bool = False):
    """A trial that previews with `scores` at steps 10, 20, ..., then asks for its full panel at its best step and
    completes, unless pruned."""
    study = optuna.load_study(study_name="s", storage=url)
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-6, 1e-4, log=True)})
    live = LiveTrial(url, "s", trial.number)
    try:
        for i, score in enumerate(scores):
            live.on_validation(event(10 * (i + 1), score, tmp_path, random_model, random_scorer))
        best = max(live.validations, key=lambda v: v["score"])
        live.gate_full_panel(best["step"], best["score"])
    except optuna.TrialPruned as pruned:
        live.stop(TrialState.PRUNED, str(pruned))
        return live
    validations = live.validations
    live.complete({"output_dir": str(tmp_path), "validations": validations, "best_step": best["step"],
                   "random_weights": random_model})
    return live


@pytest.mark.parametrize("single_objective", [True, False])
def test_a_trial_scoring_below_the_median_is_pruned(tmp_path, single_objective):
    url, study = make_study(tmp_path, single_objective)
    run_trial(url, [5.0, 6.0, 7.0], tmp_path)
    run_trial(url, [4.0, 5.0, 6.0], tmp_path)
    weak = run_trial(url, [1.0, 2.0, 3.0], tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert "pruned at step 10" in trials[2].user_attrs["pruned_reason"]
    assert trials[2].user_attrs["best_step"] == 10 and weak.curve == {10: 1.0}
    assert list((tmp_path / "artifacts").rglob(trials[2].user_attrs["artifact_ids"][0]))  # the dashboard shows it
    if single_objective:  # optuna-dashboard plots the curve of the trial it belongs to
        assert trials[2].intermediate_values == {10: 1.0} and study.metric_names == ["score"]
    else:  # reported on the companion; the curve is on the trial as a user attr
        assert trials[2].intermediate_values == {} and trials[2].user_attrs["curve"] == {"10": 1.0}
        assert study.metric_names == list(OBJECTIVES)
    strong = run_trial(url, [9.0, 9.5, 9.9], tmp_path)  # above the median: runs to the end
    assert study.get_trials()[3].state == TrialState.COMPLETE and len(strong.curve) == 3


@pytest.mark.parametrize("single_objective", [True, False])
def test_a_trial_whose_best_preview_is_below_the_median_skips_its_full_panel(tmp_path, single_objective):
    url, study = make_study(tmp_path, single_objective)
    run_trial(url, [5.0, 7.0, 6.0], tmp_path)
    run_trial(url, [9.0, 4.0, 4.0], tmp_path)  # best previews 7 and 9: median 8
    run_trial(url, [7.5, 7.5, 7.5], tmp_path)  # above the median at every step (7, 5.5, 5), best 7.5 < 8
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert "best preview 7.5 (step 10) is below the median 8 of 2 completed" in trials[2].user_attrs["pruned_reason"]
    assert trials[2].user_attrs["best_step"] == 10  # its previews stay on record
    run_trial(url, [8.5, 7.0, 6.0], tmp_path)  # best preview above the median: rendered and completed
    assert study.get_trials()[3].state == TrialState.COMPLETE


def test_with_full_panel_always_every_surviving_trial_completes(tmp_path):
    url, study = make_study(tmp_path, single_objective=True, full_panel="always")
    for scores in ([5.0, 7.0, 6.0], [9.0, 4.0, 4.0], [7.5, 7.5, 7.5]):
        run_trial(url, scores, tmp_path)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3


def test_completed_trial_carries_its_records(tmp_path):
    url, study = make_study(tmp_path, single_objective=False)
    run_trial(url, [2.0, 8.0, 4.0], tmp_path)
    trial = study.get_trials()[0]
    assert trial.values == [8.0, 0.5]  # the objectives at the best validation step (step 20)
    attrs = trial.user_attrs
    assert attrs["best_step"] == 20 and attrs["curve"] == {"10": 2.0, "20": 8.0, "30": 4.0}
    assert attrs["best_seed"] == 1  # seed 1's clips score one higher
    assert attrs["scores_by_seed"]["1"]["text_alignment"] == 9.0
    assert attrs["scores_by_prompt"]["a cube"]["text_alignment"] == 8.5
    assert attrs["random_weights"] is True and attrs["output_dir"] == str(tmp_path)
    assert len(attrs["artifact_ids"]) == 1  # the best seed's clip of the best step, beside the SQLite file
    assert list((tmp_path / "artifacts").rglob(attrs["artifact_ids"][0]))


def test_a_run_without_scores_cannot_report(tmp_path):
    url, study = make_study(tmp_path, single_objective=True)
    trial = study.ask()
    live = LiveTrial(url, "s", trial.number)
    unscored = event(10, 1.0, tmp_path)
    unscored.score = None
    with pytest.raises(ValueError, match="a sweep needs a validation score"):
        live.on_validation(unscored)


def test_resuming_with_other_objectives_is_refused(tmp_path):
    url, _ = make_study(tmp_path, single_objective=False)
    spec = StudySpec({"frame_consistency/mean": "maximize"})
    with pytest.raises(ValueError, match="exists with another objectives"):
        create_study(open_storage(url), "s", spec, optuna.samplers.RandomSampler())


def test_joining_a_study_with_another_space_or_protocol_is_refused_saying_what_differs(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = StudySpec(OBJECTIVES)
    lr = optuna.distributions.FloatDistribution(1e-6, 1e-4, log=True)
    space = {"train.learning_rate": (lr, "tag(log, interval(1e-6, 1e-4))")}
    protocol = {"values": {"validation.noise_mix": 0.2}, "searched": [], "note": ""}
    sampler = optuna.samplers.RandomSampler()
    create_study(open_storage(url), "s", spec, sampler, space, protocol)
    create_study(open_storage(url), "s", spec, sampler, space, protocol)  # the same sweep resumes
    steps = {**space, "train.max_steps": (optuna.distributions.IntDistribution(2, 4), "int(interval(2, 4))")}
    with pytest.raises(ValueError) as error:
        create_study(open_storage(url), "s", spec, sampler, steps, {**protocol, "values": {"validation.noise_mix": 0.0}})
    message = str(error.value)
    assert "search space: train.max_steps: not searched there, int(interval(2, 4)) here" in message
    assert "evaluation protocol: validation.noise_mix: 0.2 there, 0.0 here" in message
    assert "hydra.sweeper.study_name=s-2" in message and "\n" not in message
    assert optuna.load_study(study_name="s", storage=url).trials == []  # refused before any trial was asked for


@pytest.mark.parametrize("random_model, random_scorer", [(False, True), (True, False), (False, False)])
def test_scores_from_a_random_weight_scorer_are_flagged_like_a_random_model(tmp_path, random_model, random_scorer):
    url, study = make_study(tmp_path, single_objective=True)
    run_trial(url, [5.0, 6.0], tmp_path, random_model, random_scorer)
    run_trial(url, [4.0, 5.0], tmp_path, random_model, random_scorer)
    run_trial(url, [1.0, 2.0], tmp_path, random_model, random_scorer)  # below the median: pruned
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    random = random_model or random_scorer
    assert [t.user_attrs["random_weights"] for t in trials] == [random] * 3
    spec = StudySpec(OBJECTIVES, True, {}, {"name": "MedianPruner"}, "above_median")
    table = summary_table(summarize(study, spec, url))
    assert ("NOTE: scored with random weights" in table) is random
