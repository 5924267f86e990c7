"""An export knows its base: a single-file style model with a style LoRA, tuned, exported and rendered again by
generate.py from the same files; a changed file is refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from original_layout import to_original
from safetensors.torch import save_file
from test_style_lora import write_diffusers_lora

from tav import export
from tav.models import presets
from tav.models.style_lora import file_sha256

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, hub_cache: Path) -> subprocess.CompletedProcess:
    """A command as a user with only their files types it: empty Hugging Face cache, offline, no W&B."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1",
                               "HF_HUB_CACHE": str(hub_cache)})


@pytest.mark.slow
def test_single_file_with_style_lora_tunes_exports_and_renders_again_from_the_same_files(tmp_path):
    style = tmp_path / "models" / "style.safetensors"
    style.parent.mkdir()
    save_file(to_original(presets.tiny_unet(), presets.tiny_vae(), presets.tiny_text_encoder()), str(style))
    lora = tmp_path / "loras" / "watercolor.safetensors"
    lora.parent.mkdir()
    write_diffusers_lora(lora)
    run_dir, cache = tmp_path / "run", tmp_path / "empty-hub-cache"
    done = run_cli("train.py", "model=single_file", f"model.source={style}", "metrics=tiny",
                   f"model.style_loras=[{{path: {lora}, scale: 0.7}}]", f"hydra.run.dir={run_dir}", "logger=none",
                   "train.max_steps=2", "data.n_frames=4", "data.height=32", "data.width=32",
                   "validation.every_n_steps=2", "validation.inversion_steps=2", "validation.sampling_steps=2",
                   "validation.batch_size=1", "validation.noise_mix=0.3", hub_cache=cache)
    assert done.returncode == 0, done.stderr[-2000:]
    config = next(r for r in map(json.loads, (run_dir / "log.jsonl").open()) if r["kind"] == "config")["config"]
    assert config["model"]["style_loras"] == [{"path": str(lora), "scale": 0.7}]  # the run's (and W&B's) config

    folder = tmp_path / "export"
    manifest = export.write_export(export.select_run(run_dir), config, folder, dtype="fp32")
    assert manifest["base_model"] == {
        "source": str(style), "config": None, "hash": file_sha256(style), "hash_of": "sha256 of style.safetensors",
        "style_loras": [{"path": str(lora), "scale": 0.7, "sha256": file_sha256(lora)}]}
    card = (folder / "README.md").read_text()
    assert f"style LoRA fused before tuning: `{lora}` at scale 0.7 (sha256 `{file_sha256(lora)}`)" in card

    done = run_cli("generate.py", str(folder), f"prompt={manifest['best_prompt']}", f"seed={manifest['seeds'][0]}",
                   f"out={tmp_path / 'renders'}", hub_cache=cache)
    assert done.returncode == 0, done.stderr[-2000:]
    rendered = Path(done.stdout.strip().splitlines()[-1])
    validation = run_dir / "samples" / f"step_{manifest['step']:06d}" / rendered.name
    assert rendered.read_bytes() == validation.read_bytes()

    write_diffusers_lora(lora, seed=5)  # another LoRA at the recorded path
    with pytest.raises(ValueError, match=f"style LoRA {lora} here has sha256 .* but the export was tuned with"):
        export.render(export.load_export(folder), ["a cube"], [0], {}, torch.device("cpu"))
    write_diffusers_lora(lora)  # the same LoRA back, byte for byte
    save_file(to_original(presets.tiny_unet(1), presets.tiny_vae(), presets.tiny_text_encoder()), str(style))
    done = run_cli("generate.py", str(folder), "prompt=a cube", hub_cache=cache)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"base model '{style}' here has hash" in done.stderr and "use the same base model" in done.stderr
