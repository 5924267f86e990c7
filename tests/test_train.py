from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from tav.models import layout, load_base_model
from tav.timing import PhaseTimer
from tav.train import TrainSettings, resolve_compile, resolve_device, tune
from tav.validation import ValidationSettings

FRAMES = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def quick(tmp_path, steps=4, callbacks=(), **train):
    model = load_base_model("tiny")
    before = {n: p.detach().clone() for n, p in model.unet.named_parameters()}
    settings = TrainSettings(**{"max_steps": steps, "learning_rate": 1e-3, "device": "cpu", **train})
    validation = ValidationSettings(prompts=["a blue ball"], every_n_steps=2, inversion_steps=2, sampling_steps=2)
    result = tune(model, FRAMES, "a red ball", settings, validation, tmp_path, callbacks)
    return result, model, before


def test_tuning_changes_only_the_trainable_modules(tmp_path):
    result, model, before = quick(tmp_path)
    assert len(result.losses) == 4 and all(loss == loss for loss in result.losses)
    params = dict(model.unet.named_parameters())
    changed = {n for n, p in before.items() if not torch.equal(params[n].detach(), p)}
    assert changed and all(n.endswith(("attn1.to_q.weight", "attn2.to_q.weight")) for n in changed)
    assert all(params[n].abs().sum() > 0 for n in params if "attn_temp.to_out" in n)  # tuned away from zero init
    assert all(torch.equal(p, torch.ones_like(p)) for n, p in params.items() if "norm_temp.weight" in n)
    assert [v["step"] for v in result.validations] == [2, 4]
    assert result.random_weights and result.best_step is None  # no scorer: nothing ranks the checkpoints


def test_same_seed_same_run(tmp_path):
    a, _, _ = quick(tmp_path / "a")
    b, _, _ = quick(tmp_path / "b")
    assert a.losses == b.losses
    c, _, _ = quick(tmp_path / "c", seed=34)
    assert c.losses != a.losses


def test_a_scoring_callback_picks_the_best_step(tmp_path):
    result, _, _ = quick(tmp_path, steps=6, callbacks=[lambda event: -abs(event.step - 4)])
    assert result.best_step == 4 and result.best_score == 0
    assert result.best_checkpoint == tmp_path / "checkpoints" / "step_000004" / "trainable.safetensors"
    assert result.best_checkpoint.is_file()


def test_diverging_loss_stops_with_advice(tmp_path):
    with pytest.raises(FloatingPointError, match="lower train.learning_rate"):
        quick(tmp_path, steps=3, learning_rate=1e30, max_grad_norm=1e30)


def test_lora_run_tunes_adapters(tmp_path):
    result, _, _ = quick(tmp_path, steps=2, lora_rank=2)
    assert 0 < result.trainable_parameters < 117_088


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="train.device must be auto, cuda or cpu"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="train.mixed_precision must be one of"):
        tune(load_base_model("tiny"), FRAMES, "x", TrainSettings(mixed_precision="fp8", device="cpu"),
             ValidationSettings(prompts=["y"]), None)


@pytest.fixture
def fresh_accelerator():
    """Accelerate keeps one state per process; a run with another mixed precision needs it reset."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_frozen_bf16_weights_keep_trainable_ones_fp32(tmp_path, fresh_accelerator):
    result, model, _ = quick(tmp_path, steps=2, mixed_precision="bf16", frozen_dtype="bf16")
    assert len(result.losses) == 2 and all(loss == loss for loss in result.losses)
    dtypes = {p.requires_grad: set() for p in model.unet.parameters()}
    for p in model.unet.parameters():
        dtypes[p.requires_grad].add(p.dtype)
    assert dtypes == {True: {torch.float32}, False: {torch.bfloat16}}


def test_frozen_dtype_needs_mixed_precision():
    with pytest.raises(ValueError, match="train.frozen_dtype=bf16 needs train.mixed_precision=bf16 or fp16"):
        tune(load_base_model("tiny"), FRAMES, "x", TrainSettings(frozen_dtype="bf16", device="cpu"),
             ValidationSettings(prompts=["y"]), None)


def test_compiled_unet_traces_hooks_and_processors(tmp_path, monkeypatch):
    """Dynamo must capture the temporal hook, the sparse-causal processor and FrameGroupNorm, channels-last as a
    compiled UNet trains. Its eager backend checks that in seconds; inductor's CPU code generation takes over a
    minute even at the tiny shape."""
    eager, eager_model, _ = quick(tmp_path / "eager", steps=2)
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compile_module(self, backend="eager", **kw))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled, model, _ = quick(tmp_path / "compiled", steps=2, compile=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert not torch._dynamo.utils.counters["graph_break"]
    assert layout.holds_channels_last(model.unet) and not layout.holds_channels_last(eager_model.unet)
    # The same steps in another layout: the NHWC GroupNorm sums in another order than ClipGroupNorm.
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-5)
    assert not any("_orig_mod" in name for name, _ in model.unet.named_parameters())  # checkpoint keys unchanged
    torch._dynamo.reset()


def test_a_reused_prepared_model_trains_and_renders_as_a_fresh_one(tmp_path):
    """A sweep worker keeps one prepared model across trials: after reset it must behave as a fresh process."""
    from tav.train import prepare

    settings = TrainSettings(max_steps=3, learning_rate=1e-3, device="cpu", seed=5)
    validation = ValidationSettings(prompts=["a blue ball"], every_n_steps=3, inversion_steps=2, sampling_steps=2)
    fresh = tune(load_base_model("tiny"), FRAMES, "a red ball", settings, validation, tmp_path / "fresh")
    prepared = prepare(load_base_model("tiny"), TrainSettings(max_steps=3, learning_rate=1e-3, device="cpu", seed=9))
    other = TrainSettings(max_steps=2, learning_rate=1e-2, device="cpu", seed=9)
    tune(prepared, FRAMES, "a red ball", other, validation, tmp_path / "first")  # an earlier trial moves the weights
    reused = tune(prepared, FRAMES, "a red ball", settings, validation, tmp_path / "reused")
    assert reused.losses == fresh.losses
    [fresh_clip], [reused_clip] = fresh.validations[-1]["clips"], reused.validations[-1]["clips"]
    assert Path(fresh_clip["mp4"]).read_bytes() == Path(reused_clip["mp4"]).read_bytes()


def test_previews_during_training_then_the_full_panel_at_the_best_preview_step(tmp_path):
    settings = TrainSettings(max_steps=6, learning_rate=1e-3, device="cpu")
    validation = ValidationSettings(prompts=["a blue ball", "a cube"], seeds=[0, 1], noise_mix=0.5, every_n_steps=2,
                                    inversion_steps=3, sampling_steps=3, preview_steps=2)
    result = tune(load_base_model("tiny"), FRAMES, "a red ball", settings, validation, tmp_path,
                  [lambda event: -abs(event.step - 4) if event.kind == "preview" else 7.0])
    kinds = [(v["step"], v["kind"], len(v["clips"])) for v in result.validations]
    assert kinds == [(2, "preview", 2), (4, "preview", 2), (6, "preview", 2), (4, "final", 4)]
    assert result.best_step == 4 and result.best_score == 7.0
    assert result.best_checkpoint.is_file()
    timings = result.timings
    assert timings["train_step"]["calls"] == 6 and timings["sampling"]["calls"] == 3 * 2 + 4  # one clip a batch


def test_the_full_panel_is_asked_for_at_the_best_preview_step_and_can_be_refused(tmp_path):
    settings = TrainSettings(max_steps=4, learning_rate=1e-3, device="cpu")
    validation = ValidationSettings(prompts=["a blue ball"], seeds=[0, 1], noise_mix=0.5, every_n_steps=2,
                                    inversion_steps=2, sampling_steps=2, preview_steps=1)
    asked = []

    def refuse(step, score):
        asked.append((step, score))
        raise RuntimeError("no full panel")

    with pytest.raises(RuntimeError, match="no full panel"):
        tune(load_base_model("tiny"), FRAMES, "a red ball", settings, validation, tmp_path,
             [lambda event: -abs(event.step - 2)], before_full_panel=refuse)
    assert asked == [(2, 0.0)]
    assert not list(tmp_path.rglob("*.gif"))  # nothing of the full panel was rendered (previews write no gif)
    assert len(list((tmp_path / "samples").rglob("*.mp4"))) == 2  # both previews' clips were written out


def test_progress_lines_when_the_console_is_not_a_terminal(tmp_path, capsys):
    quick(tmp_path, steps=4)
    err = capsys.readouterr().err
    assert "train 4/4 loss" in err and "eta" in err and "validation step 2 (full) 1/1" in err


def test_compile_auto_compiles_a_sweeps_trials_on_a_gpu_and_nothing_else():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_compile("auto", in_sweep=True, device=cuda)
    assert not resolve_compile("auto", in_sweep=False, device=cuda)  # one cold run: compiling costs more than it saves
    assert not resolve_compile("auto", in_sweep=True, device=cpu)
    assert resolve_compile(True, in_sweep=False, device=cpu) and not resolve_compile(False, in_sweep=True, device=cuda)


def test_training_steps_wait_for_the_gpu_only_where_their_losses_are_read(tmp_path):
    """Between loss reads the host queues the next step behind the running one; every step's loss still arrives."""
    waits = []

    class Recording(PhaseTimer):
        def phase(self, name, synchronize=True):
            if name == "train_step":
                waits.append(synchronize)
            return super().phase(name, synchronize)

    settings = TrainSettings(max_steps=60, learning_rate=1e-3, device="cpu")
    validation = ValidationSettings(prompts=["a blue ball"], every_n_steps=30, inversion_steps=2, sampling_steps=2)
    seen = []
    result = tune(load_base_model("tiny"), FRAMES, "a red ball", settings, validation, tmp_path,
                  step_callbacks=[lambda step, loss, rate: seen.append(step)], timer=Recording(), progress=False)
    reads = [step for step, waited in enumerate(waits, start=1) if waited]
    assert reads == [1, *range(3, 61, 3)]  # the first step alone, then every 3rd (60 steps // 20), validations
    assert seen == list(range(1, 61)) and len(result.losses) == 60
    assert result.timings["train_step"]["calls"] == 60
