from __future__ import annotations

import math

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeps.space import parse_search_space, split_command_line, to_overrides

SEARCH_YAML = {
    "train.learning_rate": "tag(log, interval(1e-6, 1e-4))",
    "train.max_steps": "int(interval(20, 500))",
    "train.seed": "range(0, 100)",
    "validation.guidance_scale": "choice(7.5, 12.5)",
    "data.fixed": "3",
}


def parsed_value(override: str) -> object:
    return OverridesParser.create().parse_overrides([override])[0].value()


def test_the_issue_example_becomes_optuna_distributions_and_fixed_overrides():
    space = parse_search_space(SEARCH_YAML)
    assert space.distributions == {
        "train.learning_rate": FloatDistribution(1e-6, 1e-4, log=True),
        "train.max_steps": IntDistribution(20, 500),
        "train.seed": IntDistribution(0, 99),
        "validation.guidance_scale": CategoricalDistribution((7.5, 12.5)),
    }
    assert space.fixed == {"data.fixed": "3"}


@pytest.mark.parametrize("grammar, distribution", [
    ("interval(0, 1)", FloatDistribution(0.0, 1.0)),
    ("tag(log, interval(1e-6, 1e-4))", FloatDistribution(1e-6, 1e-4, log=True)),
    ("int(interval(1, 8))", IntDistribution(1, 8)),
    ("tag(log, int(interval(1, 64)))", IntDistribution(1, 64, log=True)),
    ("choice(1, 2, 4)", CategoricalDistribution((1, 2, 4))),
    ("choice(adamw, 'sgd x', 'true')", CategoricalDistribution(("adamw", "sgd x", "true"))),
    ("constant,cosine", CategoricalDistribution(("constant", "cosine"))),
    ("range(0, 10, 3)", IntDistribution(0, 9, step=3)),
    ("range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
])
def test_grammar_maps_to_distribution(grammar, distribution):
    assert parse_search_space({"key": grammar}).distributions == {"key": distribution}


@pytest.mark.parametrize("value, written", [
    ("3", "3"), (3, "3"), ("1e-5", "1e-05"), (True, "true"), ("fp16", "fp16"), ("'42'", "'42'"),
    ("null", "null"), ("[1, 2]", "[1,2]"),
])
def test_plain_values_are_fixed_not_searched(value, written):
    space = parse_search_space({"key": value})
    assert space.distributions == {}
    assert space.fixed == {"key": written}


def test_command_line_sweeps_are_searched_and_everything_else_passes_through():
    line = ["train.learning_rate=tag(log,interval(1e-5,1e-4))", "train.max_steps=300", "model.rank=choice(4,8)",
            "model=sd14,sd15", "experiment=tav_paper", "+train.extra=3", "~train.seed", "data.video=/v/a b.mp4"]
    merged, passthrough = split_command_line(SEARCH_YAML, line)
    space = parse_search_space(merged)
    assert space.distributions["train.learning_rate"] == FloatDistribution(1e-5, 1e-4, log=True)
    assert space.distributions["model.rank"] == CategoricalDistribution((4, 8))
    assert space.distributions["model"] == CategoricalDistribution(("sd14", "sd15"))  # a search over group options
    assert "train.max_steps" not in space.distributions and "train.seed" not in space.distributions  # user fixed them
    assert space.fixed == {"data.fixed": "3"}
    assert passthrough == ["train.max_steps=300", "experiment=tav_paper", "+train.extra=3", "~train.seed",
                           "data.video=/v/a b.mp4"]  # unchanged, in order


def test_sampled_values_round_trip_through_hydras_parser():
    sampled = {"lr": 1.2520653814999467e-05, "steps": 364, "guidance": 12.5, "fp16": True, "name": "sgd x",
               "looks_like_bool": "true", "looks_like_number": "1e-5", "has_comma": "a,b", "nothing": None}
    overrides = to_overrides(sampled)
    assert overrides[:2] == ["lr=1.2520653814999467e-05", "steps=364"]
    assert {o.partition("=")[0]: parsed_value(o) for o in overrides} == sampled


def test_trial_overrides_put_fixed_values_first():
    space = parse_search_space(SEARCH_YAML)
    sampled = {"train.learning_rate": 3e-5, "train.max_steps": 250, "train.seed": 33,
               "validation.guidance_scale": 12.5}
    assert space.overrides(sampled) == ["data.fixed=3", "train.learning_rate=3e-05", "train.max_steps=250",
                                        "train.seed=33", "validation.guidance_scale=12.5"]


@pytest.mark.parametrize("grammar, problem", [
    ("interval(1e-4,", "Hydra cannot parse it (no viable alternative at input 'interval(1e-4,')"),
    ("fancy(1, 2)", "Unknown function 'fancy'"),
    ("interval(2, 1)", "the interval's low (2.0) must be below its high (1.0)"),
    ("interval(1, 1)", "the interval's low (1.0) must be below its high (1.0)"),
    ("tag(log, interval(0, 1))", "a log interval needs a low above 0, got 0.0"),
    ("tag(log, int(interval(0, 10)))", "a log interval needs a low above 0, got 0"),
    ("choice()", "empty choice is not legal"),
    ("tag(exp, interval(1, 2))", "tag 'exp' is not accepted here (the only tag is log, on an interval)"),
    ("tag(log, choice(1, 2))", "tag 'log' is not accepted here"),
    ("range(5, 1)", "the range is empty: start (5) must be below stop (1)"),
    ("range(0, 5, -1)", "a range's step must be above 0, got -1"),
    ("choice([1, 2], [3])", "choice options must be null, bools, numbers or strings"),
    ("shuffle(choice(1, 2))", "shuffle() has no meaning in a search"),
    ("glob(*)", "Glob selects config files and is not a distribution"),
])
def test_malformed_entries_are_rejected_with_one_clear_line(grammar, problem):
    with pytest.raises(ValueError) as error:
        parse_search_space({"train.learning_rate": grammar})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("search space 'train.learning_rate': ")
    assert problem in message
    assert f"found '{grammar}'" in message
    assert "accepted: interval(lo, hi), int(interval(lo, hi)), tag(log, interval(lo, hi))" in message


@pytest.mark.parametrize("line, problem", [
    ("a b=3", "Hydra cannot parse it"),
    ("+train.extra=interval(1, 2)", "a searched key must already be in the config"),
    ("~train.seed=1,2", "a searched key must already be in the config"),
])
def test_bad_command_line_entries_are_rejected_with_one_line(line, problem):
    with pytest.raises(ValueError, match="^search space ") as error:
        split_command_line(SEARCH_YAML, [line])
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_float_range_keeps_the_step_grid():
    distribution = parse_search_space({"key": "range(0.0, 1.0, 0.1)"}).distributions["key"]
    assert math.isclose(distribution.high, 0.9) and distribution.step == 0.1
