"""analysis/bench_gpu.py's decoder benchmark, CPU-sized (CUDA's clock and memory calls stood in for): each variant
decodes the clip with its own chunk and layout, against one frame's counted FLOPs and bytes."""

import pytest
import torch
import torch.profiler

from analysis import bench_gpu
from tav.models.presets import tiny_unet, tiny_vae


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setattr(bench_gpu, "DEVICE", "cpu")
    # The variants' logic is the same at the tiny preset's shape; the SD-1.5 VAE in bf16 took 75 s a 64x64 frame on a
    # CPU without bf16 instructions (the suite's 2-core host).
    monkeypatch.setattr(bench_gpu, "sd15_vae", tiny_vae)
    for name, value in [("synchronize", None), ("reset_peak_memory_stats", None), ("max_memory_allocated", 0),
                        ("empty_cache", None)]:
        monkeypatch.setattr(torch.cuda, name, lambda *args, value=value: value)
    cpu_profile = torch.profiler.profile
    monkeypatch.setattr(torch.profiler, "profile",
                        lambda activities=None, **kw: cpu_profile(activities=[torch.profiler.ProfilerActivity.CPU], **kw))


def test_decode_variants_set_their_chunk_and_layout_and_count_one_frame(on_cpu):
    rows = list(bench_gpu.bench_decode(["chunk2", "chunk3+channels_last", "chunk3+autocast"], frames=3, size=64, dtype=torch.bfloat16,
                                       repeats=1))
    assert [(r["variant"], r["chunk"]) for r in rows] == [("chunk2", 2), ("chunk3+channels_last", 3),
                                                          ("chunk3+autocast", 3)]
    flop = bench_gpu.flops_of(lambda: bench_gpu.decode_variant("chunk1", torch.bfloat16)[0].decode(
        torch.randn(1, 4, 8, 8, dtype=torch.bfloat16)))
    for row in rows:
        assert row["frame_tflop"] == pytest.approx(flop / 1e12)
        assert row["eager_frame_gb"] > 0 and row["frame_ms"] > 0 and "Name" in row["kernels"]
    assert not torch.backends.cudnn.benchmark  # a variant's setting does not leak into the next benchmark


def test_a_decode_variant_builds_as_named_and_an_unknown_part_stops_with_the_options(on_cpu):
    vae, chunk, context = bench_gpu.decode_variant("chunk24+channels_last", torch.bfloat16)
    assert chunk == 24 and vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    with context():
        assert not torch.is_autocast_enabled("cpu")
    with bench_gpu.decode_variant("chunk8+autocast", torch.bfloat16)[2]():
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(SystemExit, match="unknown decode variant part 'fp8'.*chunk<N>/channels_last"):
        bench_gpu.decode_variant("chunk8+fp8", torch.bfloat16)


def test_a_unet_variant_turns_cudnn_benchmark_on_for_itself_only(on_cpu, monkeypatch):
    monkeypatch.setattr(bench_gpu, "sd15_unet", tiny_unet)
    bench_gpu.build_variant("frozen_bf16+cudnn_benchmark", "bf16")
    assert torch.backends.cudnn.benchmark
    bench_gpu.release()
    assert not torch.backends.cudnn.benchmark
    bench_gpu.build_variant("frozen_bf16", "bf16")
    assert not torch.backends.cudnn.benchmark


def test_first_steps_reports_each_steps_first_call_against_the_steady_ones(on_cpu, monkeypatch):
    monkeypatch.setattr(bench_gpu, "sd15_unet", tiny_unet)
    args = bench_gpu.argparse.Namespace(dtype="bf16")
    report = bench_gpu.first_steps("frozen_bf16", args, torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32))
    lines = report.splitlines()
    assert lines[0] == f"frozen_bf16, cuDNN attention {'on' if torch.backends.cuda.cudnn_sdp_enabled() else 'off'}"
    steps = [line for line in lines if not line.startswith(" ")][1:]
    assert [line.split(":")[0] for line in steps] == ["training step", "guided step, 1 clip", "guided step, 4 clips"]
    assert all(" s, then " in line and "first-call extra" in line for line in steps)
    assert any("aten::" in line for line in lines)  # the ops that took the first call's time
