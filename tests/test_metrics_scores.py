"""Known answers of the embedding-level scores (text alignment, frame consistency, style) on hand-built embeddings."""

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.multimodal import clip_score

from tav.metrics import frame_consistency, style_margin, style_probe, style_prototype, text_alignment


def random_embeds(n, dim=16, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_identical_frames_are_fully_consistent():
    embeds = random_embeds(1).repeat(5, 1)
    assert frame_consistency(embeds).item() == pytest.approx(100.0, abs=1e-4)
    assert frame_consistency(embeds, consecutive=True).item() == pytest.approx(100.0, abs=1e-4)


def test_orthogonal_frames_have_zero_consistency():
    assert frame_consistency(torch.eye(4) * 3).item() == pytest.approx(0.0, abs=1e-6)


def test_all_pairs_consistency_ignores_frame_order_and_consecutive_does_not():
    embeds = random_embeds(6)
    shuffled = embeds[torch.tensor([3, 0, 5, 1, 4, 2])]
    assert frame_consistency(shuffled).item() == pytest.approx(frame_consistency(embeds).item(), abs=1e-4)
    assert frame_consistency(shuffled, consecutive=True).item() != pytest.approx(
        frame_consistency(embeds, consecutive=True).item(), abs=1e-2)


def test_all_pairs_consistency_is_loveus_formula():
    embeds = random_embeds(5)
    unit = F.normalize(embeds, dim=-1)
    cos = unit @ unit.T
    expected = 100 * (cos.sum() - cos.diagonal().sum()) / (5 * 4)
    assert frame_consistency(embeds).item() == pytest.approx(expected.item(), abs=1e-4)


def test_consistency_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2 frames; found 1"):
        frame_consistency(random_embeds(1))


class FeaturesAsCLIP(torch.nn.Module):
    """Stands in for a transformers CLIP model + processor (no weights here): the 'images' are the embeddings."""

    def __init__(self, text_embed):
        super().__init__()
        self.text_embed = text_embed
        self.config = object()

    def get_image_features(self, pixel_values):
        return pixel_values

    def get_text_features(self, input_ids, attention_mask):
        return self.text_embed.expand(len(input_ids), -1)

    def __call__(self, images=None, text=None, **kwargs):
        if images is not None:
            return {"pixel_values": torch.stack([image.flatten() for image in images])}
        ids = torch.zeros(len(text), 1, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_text_alignment_is_loveus_formula_and_torchmetrics_clip_score():
    text = torch.rand(16) + 0.5
    images = torch.rand(6, 16) + 0.1  # positive features: positive cosines, so torchmetrics' clamp at 0 is idle
    loveu = (100 * F.cosine_similarity(images, text[None], dim=-1)).mean()
    ours = text_alignment(images, text)
    stub = FeaturesAsCLIP(text)
    reference = clip_score(list(images[:, :, None, None]), ["a prompt"] * 6, model_name_or_path=lambda: (stub, stub))
    assert ours.item() == pytest.approx(loveu.item(), abs=1e-5)
    assert ours.item() == pytest.approx(reference.item(), abs=1e-5)


def test_text_alignment_is_not_clamped():
    assert text_alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([-1.0, 0.0])).item() == pytest.approx(-100.0)


def test_style_probe_prefers_the_phrase_a_frame_looks_like():
    target, source = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    frames = torch.stack([target, source, target + source])
    probe = style_probe(frames, target, source, logit_scale=100.0)
    assert probe[0] > 0.99 and probe[1] < 0.01 and probe[2].item() == pytest.approx(0.5)


def test_style_margin_favours_the_reference_look_over_the_source_frame():
    references = torch.tensor([[1.0, 0.1, 0.0], [1.0, -0.1, 0.0]])
    prototype = style_prototype(references)
    assert torch.allclose(prototype, torch.tensor([1.0, 0.0, 0.0]))
    source = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    like_reference = style_margin(prototype.expand(2, -1), prototype, source)
    like_source = style_margin(source, prototype, source)
    assert torch.allclose(like_reference, torch.tensor([100.0, 100.0]))
    assert torch.allclose(like_source, torch.tensor([-100.0, -100.0]))
