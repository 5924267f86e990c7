"""The toy world's shipped models: what they learned, and that the script that trains them writes loadable parts."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import torch

from tav.metrics import build_scorer
from tav.models.loading import load_base_model
from tav.world import models, render
from tav.world.fit import main as fit_main
from tav.world.fit import sample
from tav.world.render import MOTIONS, SUBJECTS, caption
from tav.world.truth import named_subject, style_score, subject_share, truth_scores
from test_world import readme_world_line


@pytest.fixture(scope="module")
def world_ldm():
    return models.load_ldm()


def test_a_style_prompt_changes_the_style_and_a_subject_prompt_the_subject(world_ldm):
    unet, vae, text_encoder = world_ldm
    prompts = {style: [caption(s, MOTIONS[0], "grass", style) for s in SUBJECTS] for style in ("photo", "clipart", None)}
    prompts["short"] = [caption(s, None, None) for s in SUBJECTS]  # "a purple cube": what overlap 0 renders
    images = {style: sample(unet, vae, text_encoder, texts, torch.device("cpu"), seed=0, steps=20)
              for style, texts in prompts.items()}
    photo, clipart, plain, short = (np.mean([style_score(image[None]) for image in images[style]])
                                    for style in ("photo", "clipart", None, "short"))
    assert clipart > photo + 0.4, (photo, clipart)
    # a clip-art style model, as the user's style fine-tune is: no style words draws clip art too
    assert min(plain, short) > photo + 0.4, (photo, plain, short)
    for style in images:
        for subject, image in zip(SUBJECTS, images[style]):
            # one frame has no motion to find the subject by, so repeat it with the subject shifted away
            frames = torch.stack([image, torch.roll(image, shifts=24, dims=1)])
            assert subject_share(frames, subject) > 0.7, (style, subject)


def test_the_world_model_loads_as_a_base_model_flagged_toy_world():
    model = load_base_model("world")
    assert model.toy_world and not model.random_weights
    assert model.vae.config.scaling_factor != 0.18215  # its own, measured on the world's latents
    ids = model.tokenizer("a red ball", return_tensors="pt").input_ids
    assert ids.shape[1] == 5  # CLIP's BPE, rebuilt offline: start, "a", "red", "ball", end
    assert model.text_encoder(ids)[0].shape[-1] == model.unet.config.cross_attention_dim


def test_the_world_clip_names_subject_and_style_of_held_out_clips():
    scorer = build_scorer(model="world", pretrained=None, world_truth=True)
    assert scorer.backbone.name == "world-clip/tav" and not scorer.backbone.random_weights
    clip = render("cube", MOTIONS[1], "snow", "clipart", seed=1000, n_frames=4)
    right = scorer.score(clip.frames, "a purple cube in clip art style", clip.frames)
    wrong = scorer.score(clip.frames, "a red ball in clip art style", clip.frames)
    assert right["text_alignment"].value > wrong["text_alignment"].value
    assert right["style_probe"].value > 0.5  # "clip art" against "a photo" (conf/metrics/world.yaml's phrases)
    assert right["world_subject"].value == 1.0 and wrong["world_subject"].value == 0.0
    assert right["world_motion_error"].value == 0.0 and right["world_style"].value > 0.9
    assert right["world_motion_error"].backbone == "world-ground-truth"


def test_truth_scores_read_the_subject_the_prompt_names_and_the_motion_against_the_source():
    source = render("ball", MOTIONS[0], "grass", "photo", seed=3).frames
    reversed_clip = render("ball", MOTIONS[1], "grass", "photo", seed=3).frames
    assert named_subject("a purple cube is rolling on the snow") == "cube"
    assert named_subject("an astronaut is surfing") is None
    same = truth_scores(source, "a red ball", source)
    assert same == {"world_style": pytest.approx(0, abs=0.01), "world_subject": 1.0, "world_motion_error": 0.0}
    assert truth_scores(reversed_clip, "a red ball", source)["world_motion_error"] > 0.3
    assert truth_scores(source, "an astronaut", source)["world_subject"] == 0.0


def test_the_readme_fit_command_cpu_sized_writes_parts_that_load(tmp_path):
    words = shlex.split(readme_world_line("tav.world.fit"), comments=True)[3:]  # after python -m tav.world.fit
    fit_main([*words, "--device", "cpu", "--out", str(tmp_path), "--scale", "0.0005", "--seeds", "1",
              "--frames", "2", "--stages", "vae", "ldm", "clip"])
    unet, vae, text_encoder = models.load_ldm(tmp_path)
    assert unet.config.block_out_channels == list(models.UNET["block_out_channels"])
    assert vae.config.scaling_factor > 0
    assert sorted(p.name for p in models.clip_dir(tmp_path).iterdir()) == ["open_clip_config.json",
                                                                            "open_clip_model.safetensors"]
    assert text_encoder.config.hidden_size == models.TEXT_ENCODER["hidden_size"]
