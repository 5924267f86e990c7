"""The scorer's input contract, backends and errors, and the validation-hook callback, with a tiny random CLIP."""

from pathlib import Path

import cv2
import numpy as np
import open_clip
import pytest
import torch
import yaml
from safetensors.torch import save_file

from tav.events import RenderedClip, ValidationEvent
from tav.metrics import MetricsCallback, build_scorer, find_weights, load_backbone

CONF = Path(__file__).resolve().parents[1] / "conf" / "metrics"


def tiny_settings():
    return yaml.safe_load((CONF / "tiny.yaml").read_text())


@pytest.fixture(scope="module")
def scorer():
    return build_scorer(**tiny_settings()["scorer"])


def clip_frames(seed, n=4, size=32):
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_clip_tokenizer_gives_the_known_ids():
    ids = open_clip.get_tokenizer("ViT-L-14")(["a clip art illustration of a dog"])[0]
    assert ids[:9].tolist() == [49406, 320, 9289, 794, 6052, 539, 320, 1929, 49407]
    assert ids.shape == (77,) and not ids[9:].any()


def test_config_keys_are_build_scorer_arguments():
    for path in CONF.glob("*.yaml"):
        settings = yaml.safe_load(path.read_text())
        assert set(settings) - {"defaults"} == {"scorer", "score_weights"}, path  # defaults: the schema node
        assert build_scorer.__code__.co_varnames[:build_scorer.__code__.co_argcount] == (*settings["scorer"], "device")


def test_scores_carry_definition_backbone_and_random_flag(scorer):
    scores = scorer.score(clip_frames(1), "a dog", clip_frames(2))
    assert set(scores) == {"text_alignment", "frame_consistency", "style_probe", "style_probe_worst", "warp_error",
                           "flicker"}
    assert scores["text_alignment"].backbone == "ViT-S-32/random(seed=0)" and scores["text_alignment"].random_weights
    assert "LOVEU-TGVE 2023" in scores["frame_consistency"].definition
    assert "a clip art illustration" in scores["style_probe"].definition
    assert not scores["warp_error"].random_weights and not scores["warp_error"].higher_is_better
    assert 0 <= scores["style_probe_worst"].value <= scores["style_probe"].value <= 1


def test_uint8_and_float_frames_score_the_same_and_random_init_is_seeded(scorer):
    frames, source = clip_frames(1), clip_frames(2)
    as_uint8 = scorer.score(frames, "a dog", source)
    as_float = scorer.score(frames.float() / 255, "a dog", source.float() / 255)
    again = build_scorer(**tiny_settings()["scorer"]).score(frames, "a dog", source)
    for name, score in as_uint8.items():
        assert as_float[name].value == pytest.approx(score.value, abs=1e-4), name
        assert again[name].value == pytest.approx(score.value, abs=1e-4), name


@pytest.mark.parametrize("frames, message", [
    (torch.zeros(4, 32, 32, dtype=torch.uint8), r"found shape \(4, 32, 32\)"),
    (torch.zeros(4, 3, 32, 32, dtype=torch.uint8), r"found shape \(4, 3, 32, 32\)"),
    (torch.full((4, 32, 32, 3), 255.0), r"found float values in \[255, 255\]"),
    (torch.zeros(0, 32, 32, 3, dtype=torch.uint8), "found 0 frames"),
    (torch.zeros(4, 32, 32, 3, dtype=torch.int64), "found dtype torch.int64"),
])
def test_bad_frames_are_rejected_with_what_was_found_and_expected(scorer, frames, message):
    with pytest.raises(ValueError, match=message) as error:
        scorer.score(frames, "a dog", clip_frames(2))
    assert "expected a (frames, height, width, 3) tensor, uint8 in 0..255 or float in [0, 1]" in str(error.value)


def test_bad_source_frames_are_rejected(scorer):
    with pytest.raises(ValueError, match="as many frames; found 4 and 3"):
        scorer.score(clip_frames(1), "a dog", clip_frames(2, n=3))
    with pytest.raises(ValueError, match="source_frames: expected .* found a ndarray"):
        scorer.score(clip_frames(1), "a dog", clip_frames(2).numpy())


def test_missing_weights_name_what_to_download_and_which_key_to_set(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        build_scorer(model="ViT-L-14", pretrained="openai", cache_dir=str(tmp_path))
    message = str(error.value)
    assert "hf download timm/vit_large_patch14_clip_224.openai open_clip_model.safetensors" in message
    assert "metrics.scorer.pretrained" in message and "random_weights" in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="neither a file nor an open_clip tag of ViT-L-14"):
        find_weights("ViT-L-14", str(tmp_path / "missing.safetensors"))


def test_a_local_checkpoint_file_is_loaded(scorer, tmp_path):
    random = scorer.backbone
    path = tmp_path / "clip.safetensors"
    save_file({k: v.half() for k, v in random.model.state_dict().items()}, path)  # half the bytes to write
    loaded = load_backbone("ViT-S-32", pretrained=str(path))
    assert loaded.name == "ViT-S-32/clip.safetensors" and not loaded.random_weights
    assert torch.allclose(loaded.embed_text("a dog"), random.embed_text("a dog"), atol=1e-2)


def test_loading_a_checkpoint_leaves_the_runs_random_stream_alone(scorer, tmp_path):
    path = tmp_path / "clip.safetensors"
    weights = {k: v.contiguous() for k, v in scorer.backbone.model.state_dict().items()}
    save_file(weights, path)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    loaded = load_backbone("ViT-S-32", pretrained=str(path), precision="fp32")
    assert torch.equal(torch.rand(3), expected)  # open_clip's initialisation drew from a forked generator
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in weights.items())


def test_missing_reference_folder_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="style_reference_dir"):
        build_scorer(**{**tiny_settings()["scorer"], "style_reference_dir": str(tmp_path / "nowhere")})


def test_reference_images_enable_the_style_margin(tmp_path):
    for i in range(2):
        image = np.random.default_rng(i).integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"style_{i}.png"), image)
    scorer = build_scorer(**{**tiny_settings()["scorer"], "style_reference_dir": str(tmp_path)})
    scores = scorer.score(clip_frames(1), "a dog", clip_frames(2))
    assert scores["style_margin_worst"].value <= scores["style_margin"].value
    assert scores["style_margin"].random_weights


def make_event(n_clips=3):
    clips = [RenderedClip(f"a dog {i}", i, clip_frames(10 + i), Path(f"{i}.mp4"), Path(f"{i}.gif"))
             for i in range(n_clips)]
    return ValidationEvent(step=100, clips=clips, source_frames=clip_frames(0), source_prompt="a cat",
                           checkpoint_path=Path("c.safetensors"), output_dir=Path("."), device=torch.device("cpu"),
                           random_weights=True)


def test_hook_fills_clip_and_panel_scores_and_returns_the_weighted_score(scorer):
    weights = tiny_settings()["score_weights"]
    event = make_event()
    result = MetricsCallback(scorer, weights)(event)
    for clip in event.clips:
        assert set(clip.scores) == {*scorer.score_names, "score"}
        own = sum(w * (-1 if k == "warp_error" else 1) * clip.scores[k] for k, w in weights.items())
        assert clip.scores["score"] == pytest.approx(own)  # each clip ranked by the run's own weighting
    for name in scorer.score_names:
        values = [clip.scores[name] for clip in event.clips]
        assert event.scores[f"{name}/mean"] == pytest.approx(sum(values) / 3)
        assert event.scores[f"{name}/worst"] == (max(values) if name == "warp_error" else min(values))
        assert event.score_info[name]["random_weights"] == (name not in ("warp_error", "flicker"))
    assert event.score_info["text_alignment"]["backbone"] == "ViT-S-32/random(seed=0)"
    assert event.score_info["warp_error"]["higher_is_better"] is False
    expected = sum(w * (-1 if k == "warp_error" else 1) * event.scores[f"{k}/mean"] for k, w in weights.items())
    assert result == pytest.approx(expected)


def test_hook_without_weights_returns_no_score(scorer):
    event = make_event(1)
    assert MetricsCallback(scorer)(event) is None and event.scores


def test_unknown_score_weights_fail_at_construction(scorer):
    with pytest.raises(ValueError, match=r"unknown scores \['style_margin', 'texts'\]"):
        MetricsCallback(scorer, {"texts": 1.0, "style_margin": 1.0, "flicker": 1.0})
