import os
import subprocess
import sys
from pathlib import Path

from sweeps.compile_cache import use_compile_cache


def test_a_sweep_keeps_its_compile_cache_in_its_folder_unless_the_environment_names_one(tmp_path):
    environ = {"PATH": "/bin", "CUDA_CACHE_PATH": "/mnt/keep/cuda-jit"}
    cache = use_compile_cache(tmp_path / "compile_cache", environ)
    assert cache == str(tmp_path / "compile_cache" / "inductor")
    # what the workers it starts inherit; the driver's JIT cache is the environment's to name (before CUDA starts)
    assert environ == {"PATH": "/bin", "CUDA_CACHE_PATH": "/mnt/keep/cuda-jit", "TORCHINDUCTOR_CACHE_DIR": cache}

    chosen = {"TORCHINDUCTOR_CACHE_DIR": "/mnt/keep/torch-compile"}
    assert use_compile_cache(tmp_path, chosen) == "/mnt/keep/torch-compile"

    untouched = {"PATH": "/bin"}
    assert use_compile_cache(None, untouched) is None and untouched == {"PATH": "/bin"}


def test_a_relative_cache_folder_is_kept_as_an_absolute_path(tmp_path, monkeypatch):
    """Workers and trials may change folder; the caches must not follow."""
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}
    use_compile_cache(Path("outputs/sweeps/s/compile_cache"), environ)
    assert environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "outputs/sweeps/s/compile_cache/inductor")


def test_the_folder_torch_writes_into_the_environment_on_import_is_not_taken_for_a_users_choice(tmp_path):
    """Importing torch._dynamo (diffusers does, before any sweep starts) sets TORCHINDUCTOR_CACHE_DIR to inductor's
    default folder: the sweep's folder must still win over it, as over no setting at all."""
    code = ("import os, sys, torch._dynamo; from sweeps.compile_cache import use_compile_cache; "
            "assert 'TORCHINDUCTOR_CACHE_DIR' in os.environ; print(use_compile_cache(sys.argv[1]))")
    environ = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "CUDA_CACHE_PATH")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=environ,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tmp_path / "inductor")
