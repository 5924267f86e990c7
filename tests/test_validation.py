import copy
import threading

import pytest
import torch

from tav import media, pipeline
from tav.models import inflate_unet, layout, load_trainable
from tav.media import write_mp4
from tav.validation import GPU_AUTO_BATCH_MAX, ValidationSettings, Validator, balanced_batches, prompt_slug


def make_validator(model, tmp_path, callbacks=(), **settings):
    frames = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    prompts = list(settings.pop("prompts", ["a blue ball", "a green ball"]))
    embeddings = pipeline.encode_prompts(model.tokenizer, model.text_encoder, ["", *prompts], torch.device("cpu"))
    s = ValidationSettings(prompts=prompts, inversion_steps=2, sampling_steps=2, **settings)
    return Validator(s, model.vae, pipeline.encode_clip(model.vae, frames), frames, "a red ball", embeddings[1:],
                     embeddings[:1], model.scheduler_config, tmp_path, model.random_weights, list(callbacks))


def test_validation_renders_the_panel_and_writes_clips_and_checkpoint(tiny_model, tmp_path):
    events = []
    validator = make_validator(tiny_model, tmp_path, callbacks=[events.append], seeds=[1, 2], noise_mix=0.5,
                               batch_size=3)
    video = inflate_unet(tiny_model.unet)
    event = validator(7, video)
    validator.finish(video)  # gifs are written in the background until the run finishes
    assert events == [event] and event.step == 7 and event.random_weights
    assert [(c.prompt, c.seed) for c in event.clips] == [("a blue ball", 1), ("a blue ball", 2),
                                                         ("a green ball", 1), ("a green ball", 2)]
    for clip in event.clips:
        assert clip.frames.shape == (3, 32, 32, 3) and clip.frames.dtype == torch.uint8
        assert clip.mp4_path.stat().st_size > 0 and clip.gif_path.stat().st_size > 0
        assert clip.mp4_path.parent.name == "step_000007"
    assert not torch.equal(event.clips[0].frames, event.clips[1].frames)  # seeds matter once noise_mix > 0
    assert event.checkpoint_path.is_file()
    assert (event.checkpoint_path.parent / "inverted_latents.safetensors").is_file()
    assert load_trainable(inflate_unet(tiny_model.unet.__class__.from_config(tiny_model.unet.config)),
                          event.checkpoint_path)


def test_batched_and_one_by_one_rendering_agree(tiny_model, tmp_path):
    video = inflate_unet(tiny_model.unet)
    one = make_validator(tiny_model, tmp_path / "a", seeds=[1, 2], noise_mix=0.3, batch_size=1)(1, video)
    many = make_validator(tiny_model, tmp_path / "b", seeds=[1, 2], noise_mix=0.3, batch_size=4)(1, video)
    for a, b in zip(one.clips, many.clips):
        assert (a.frames.int() - b.frames.int()).abs().max() <= 1  # batching only changes float rounding


def test_sampling_runs_under_the_runs_autocast_and_decoding_in_the_vaes_own_dtype(tiny_model, tmp_path, monkeypatch):
    """Autocast runs GroupNorm in fp32, which made a bf16 decoder 1.3x slower on an H100 (analysis/PERF.md round 7)."""
    validator = make_validator(tiny_model, tmp_path, seeds=[1], batch_size=2)
    validator.autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    seen = []
    unet_forward, decode = tiny_model.unet.forward, tiny_model.vae.decode
    monkeypatch.setattr(tiny_model.unet, "forward",
                        lambda *a, **kw: seen.append(("unet", torch.is_autocast_enabled("cpu"))) or unet_forward(*a, **kw))
    monkeypatch.setattr(tiny_model.vae, "decode",
                        lambda *a, **kw: seen.append(("vae", torch.is_autocast_enabled("cpu"))) or decode(*a, **kw))
    event = validator(1, inflate_unet(tiny_model.unet))
    assert len(event.clips) == 2 and {("unet", True), ("vae", False)} == set(seen)


def test_a_compiled_unet_renders_eager_and_channels_last_the_same_clips_as_an_eager_one(tiny_model, tmp_path,
                                                                                        monkeypatch):
    """A compiled run's validations render as an eager run's and an export's do (analysis/PERF.md round 24): the UNet
    and the VAE channels-last, nothing traced, the same clips. Afterwards the VAE and the eager UNet are
    channels-first again, and the compiled UNet still channels-last, as it trains (round 25)."""
    from tav.train import TrainSettings, apply_speed_settings

    compiled = inflate_unet(tiny_model.unet)
    eager = copy.deepcopy(compiled)
    apply_speed_settings(compiled, TrainSettings(compile=True, compile_mode="regional"))
    seen = []
    unet_forward, decode = tiny_model.unet.forward, tiny_model.vae.decode
    monkeypatch.setattr(tiny_model.unet, "forward", lambda *a, **kw: seen.append(
        ("unet", layout.holds_channels_last(tiny_model.unet), torch.compiler.is_compiling())) or unet_forward(*a, **kw))
    monkeypatch.setattr(tiny_model.vae, "decode", lambda *a, **kw: seen.append(
        ("vae", layout.holds_channels_last(tiny_model.vae), False)) or decode(*a, **kw))
    clips = [make_validator(tiny_model, tmp_path / name, seeds=[1], batch_size=2, noise_mix=0.5)(1, video).clips
             for name, video in (("eager", eager), ("compiled", compiled))]
    assert set(seen) == {("unet", True, False), ("vae", True, False)}
    assert [torch.equal(a.frames, b.frames) for a, b in zip(*clips)] == [True, True]
    assert layout.holds_channels_last(compiled) and not layout.holds_channels_last(eager)
    assert not layout.holds_channels_last(tiny_model.vae)


def test_a_validation_hands_its_clips_on_while_their_mp4s_are_still_encoding(tiny_model, tmp_path, monkeypatch):
    encoding_may_finish, seen = threading.Event(), []

    def slow_write_mp4(frames, path, fps=8):
        assert encoding_may_finish.wait(timeout=60), "the validation waited for its mp4s before its callbacks"
        return write_mp4(frames, path, fps)

    def logger(event):
        seen.append([clip.mp4_path.exists() for clip in event.clips])
        encoding_may_finish.set()
        event.wait_for_mp4s()  # what a logger that uploads the files does
        seen.append([clip.mp4_path.stat().st_size > 0 for clip in event.clips])

    monkeypatch.setattr(media, "write_mp4", slow_write_mp4)
    validator = make_validator(tiny_model, tmp_path, callbacks=[logger], prompts=["a ball"], seeds=[1, 2],
                               noise_mix=0.5)
    validator(3, inflate_unet(tiny_model.unet))
    assert seen == [[False, False], [True, True]]


def test_a_run_stopped_by_a_callback_leaves_its_clips_files_complete(tiny_model, tmp_path):
    def prune(event):
        raise RuntimeError("pruned")

    validator = make_validator(tiny_model, tmp_path, callbacks=[prune], prompts=["a ball"])
    with pytest.raises(RuntimeError, match="pruned"):
        validator(3, inflate_unet(tiny_model.unet))
    written = sorted(p.suffix for p in (tmp_path / "samples" / "step_000003").iterdir())
    assert written == [".gif", ".mp4"] and all(p.stat().st_size > 0 for p in (tmp_path / "samples").rglob("*.*"))


def test_scored_validation_keeps_the_best_k_checkpoints(tiny_model, tmp_path):
    scores = {1: 0.5, 2: 0.9, 3: 0.1, 4: 0.7}
    validator = make_validator(tiny_model, tmp_path, callbacks=[lambda e: scores[e.step]], keep_best_k=2,
                               prompts=["a ball"])
    video = inflate_unet(tiny_model.unet)
    for step in scores:
        validator(step, video)
    assert validator.best_step == 2
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step_000002", "step_000004"]
    assert [e.score for e in validator.history] == [0.5, 0.9, 0.1, 0.7]


def test_invert_once_reuses_the_first_inversion(tiny_model, tmp_path):
    video = inflate_unet(tiny_model.unet)
    validator = make_validator(tiny_model, tmp_path, invert_once=True, prompts=["a ball"])
    first = validator.invert(video)
    for name, p in video.unet.named_parameters():
        if "attn_temp.to_out" in name:
            torch.nn.init.normal_(p)
    assert validator.invert(video) is first
    validator.settings.invert_once = False
    assert not torch.equal(validator.invert(video), first)


def test_prompt_slug_is_a_safe_file_name():
    assert prompt_slug("A boy, wearing a birthday hat, is surfing!") == "a-boy-wearing-a-birthday-hat-is-surfing"


def test_a_preview_with_the_full_step_count_renders_the_full_clip(tiny_model, tmp_path):
    video = inflate_unet(tiny_model.unet)
    full = make_validator(tiny_model, tmp_path / "full", seeds=[3], noise_mix=0.4)(2, video)
    preview = make_validator(tiny_model, tmp_path / "preview", seeds=[3], noise_mix=0.4, preview_steps=2)(
        2, video, preview=True)
    assert preview.kind == "preview" and full.kind == "full"
    assert torch.equal(preview.clips[0].frames, full.clips[0].frames)


def test_without_noise_every_seed_is_the_same_clip_so_one_is_rendered(tiny_model, tmp_path):
    from tav.train import validation_record
    from tav.validation import best_seed

    video = inflate_unet(tiny_model.unet)
    event = make_validator(tiny_model, tmp_path, seeds=[0, 1, 2, 3], noise_mix=0.0)(1, video)
    assert [c.seed for c in event.clips] == [0, 0]  # one clip per prompt, not four
    for clip in event.clips:
        clip.scores["score"] = 1.0
    assert best_seed(validation_record(event), "score") is None  # no seed is better than another


def test_a_panel_splits_into_the_fewest_batches_of_near_equal_size():
    cells = list(range(32))
    assert [len(b) for b in balanced_batches(cells, 24)] == [16, 16]  # one batch shape, one set of cuDNN kernels
    assert [len(b) for b in balanced_batches(list(range(33)), 16)] == [11, 11, 11]
    assert [len(b) for b in balanced_batches(cells, 64)] == [32]
    assert sum(balanced_batches(list(range(7)), 3), []) == list(range(7))  # every cell once, in order


def test_the_auto_batch_takes_what_fits_up_to_its_cap(tiny_model, tmp_path):
    validator = make_validator(tiny_model, tmp_path, batch_size=0)
    cuda = torch.device("cuda")  # a device name only: nothing runs on it
    validator._clips_per_batch = 3  # what the first inversion measured
    assert validator._batch_size(cuda) == 3
    validator._clips_per_batch = 24  # a large card: bigger batches render slower per clip
    assert validator._batch_size(cuda) == GPU_AUTO_BATCH_MAX == 8


def test_a_batch_cap_holds_the_auto_batch_but_not_a_set_one(tiny_model, tmp_path):
    """A seed screen caps its batches at its kept seeds', so its screen and its full renders share one shape."""
    validator = make_validator(tiny_model, tmp_path, batch_size=0)
    validator.batch_cap = 4
    cuda = torch.device("cuda")
    validator._clips_per_batch = 24
    assert validator._batch_size(cuda) == 4 and validator._batch_size(torch.device("cpu")) == 4
    validator._clips_per_batch = 3  # what fits still bounds it
    assert validator._batch_size(cuda) == 3
    validator.settings.batch_size = 6  # a batch size the user set is theirs
    assert validator._batch_size(cuda) == 6


def test_with_previews_the_full_panel_renders_in_batches_of_the_previews_shape(tiny_model, tmp_path, monkeypatch):
    """One batch shape in a run: the full panel renders in the previews' shape, for which cuDNN built its kernels."""
    validator = make_validator(tiny_model, tmp_path, batch_size=0, seeds=[0, 1, 2, 3], noise_mix=0.2,
                               preview_steps=2)
    batches = []
    render = Validator.render
    monkeypatch.setattr(Validator, "render", lambda self, unet, inverted, cells, steps=None: (
        batches.append(len(cells)), render(self, unet, inverted, cells, steps))[1])
    video = inflate_unet(tiny_model.unet)
    validator(1, video, preview=True)
    final = validator.finish(video)
    assert len(final.clips) == 8 and batches == [2, 2, 2, 2, 2]  # 2 prompts x 1 seed, then 2 x 4 in 4 batches
    validator._clips_per_batch = 1  # a card that holds one clip at a time still gets one clip per batch
    assert validator._batch_size(torch.device("cuda")) == 1
