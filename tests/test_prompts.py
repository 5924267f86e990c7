from __future__ import annotations

import json

import pytest

from tav.prompts import build_prompts, measure_overlap

SURFING = dict(source_subject="man", edit_subject="astronaut", target_style="in clip art style",
               source_style="a photo of")


def surfing(overlap: float):
    return build_prompts("a man is surfing", overlap, **SURFING)


@pytest.mark.parametrize("overlap, generation_prompt, kept, dropped", [
    (0.0, "an astronaut in clip art style", (), ("photo", "man", "surfing")),
    (0.5, "an astronaut man is surfing in clip art style", ("man", "surfing"), ("photo",)),
    (1.0, "a photo of an astronaut man is surfing in clip art style", ("photo", "man", "surfing"), ()),
])
def test_known_prompt_pairs(overlap, generation_prompt, kept, dropped):
    pair = surfing(overlap)
    assert pair.train_prompt == "a photo of a man is surfing"
    assert pair.generation_prompt == generation_prompt
    assert pair.kept_words == kept
    assert pair.dropped_words == dropped


def test_subject_is_replaced_before_the_action_is_dropped():
    assert surfing(1 / 3).generation_prompt == "an astronaut is surfing in clip art style"


def test_later_caption_words_are_dropped_first_and_kept_words_keep_their_order():
    pair = build_prompts("a man is surfing a big wave", 0.5, source_subject="man", edit_subject="boy")
    assert pair.generation_prompt == "a boy is surfing a big"
    assert pair.dropped_words == ("man", "wave")


def test_style_only_edit_keeps_the_subject():
    pair = build_prompts("a man is surfing", 0.0, source_subject="man", edit_subject="man",
                         target_style="in clip art style", source_style="a photo of")
    assert pair.generation_prompt == "a man in clip art style"
    assert pair.kept_words == ("man",)


def test_record_is_json_ready_and_holds_both_prompts_and_overlaps():
    record = surfing(0.5).as_record()
    assert json.loads(json.dumps(record)) == record
    assert record["train_prompt"] == "a photo of a man is surfing"
    assert record["generation_prompt"] == "an astronaut man is surfing in clip art style"
    assert record["overlap_requested"] == 0.5
    assert record["overlap_measured"] == pytest.approx(2 / 7)


def test_realised_overlap_grows_with_the_requested_overlap():
    measured = [surfing(r / 10).overlap_measured for r in range(11)]
    assert measured == sorted(measured)
    assert measured[0] == 0.0 and measured[-1] > measured[0]


def test_measured_overlap_of_identical_prompts_is_one():
    assert measure_overlap("a man is surfing", "a man is surfing") == 1.0


def test_measured_overlap_ignores_stop_words_and_case():
    assert measure_overlap("a man is surfing", "The Man, surfing.") == 1.0


def test_measured_overlap_of_disjoint_content_is_zero():
    assert measure_overlap("a man is surfing", "a cat in the garden") == 0.0


def test_measured_overlap_is_symmetric_jaccard():
    a, b = "a photo of a man is surfing", "an astronaut is surfing in clip art style"
    assert measure_overlap(a, b) == measure_overlap(b, a) == pytest.approx(1 / 7)


def test_measured_overlap_without_content_words_is_an_error():
    with pytest.raises(ValueError, match="has a content word"):
        measure_overlap("a", "of the")


@pytest.mark.parametrize("caption, overlap, subject, message", [
    ("a man is surfing", 1.5, "man", "overlap is 1.5; pass a share of content words between 0 and 1"),
    ("a man is surfing", -0.1, "man", "overlap is -0.1"),
    ("   ", 0.5, "man", "source_caption is empty"),
    ("a man is surfing", 0.5, "boy", "source_subject 'boy' is not in the caption 'a man is surfing'"),
    ("a man is surfing", 0.5, "a", "source_subject 'a' has no content word"),
])
def test_bad_arguments_are_named(caption, overlap, subject, message):
    with pytest.raises(ValueError, match=message):
        build_prompts(caption, overlap, source_subject=subject, edit_subject="astronaut")


def test_empty_edit_subject_is_named():
    with pytest.raises(ValueError, match="edit_subject is empty"):
        build_prompts("a man is surfing", 0.5, source_subject="man", edit_subject=" ")
