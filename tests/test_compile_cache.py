import os
import subprocess
import sys
from pathlib import Path

from sweeps.compile_cache import use_compile_cache


def test_a_sweep_keeps_its_compile_caches_in_its_folder_unless_the_environment_names_them(tmp_path):
    environ = {"PATH": "/bin"}
    caches = use_compile_cache(tmp_path / "compile_cache", environ)
    assert caches == {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "compile_cache" / "inductor"),
                      "CUDA_CACHE_PATH": str(tmp_path / "compile_cache" / "cuda")}
    assert environ == {"PATH": "/bin", **caches}  # what the workers it starts inherit

    chosen = {"TORCHINDUCTOR_CACHE_DIR": "/mnt/keep/torch-compile", "CUDA_CACHE_PATH": "/mnt/keep/cuda-jit"}
    assert use_compile_cache(tmp_path, chosen) == {"TORCHINDUCTOR_CACHE_DIR": "/mnt/keep/torch-compile",
                                                   "CUDA_CACHE_PATH": "/mnt/keep/cuda-jit"}

    untouched = {"PATH": "/bin"}
    assert use_compile_cache(None, untouched) == {} and untouched == {"PATH": "/bin"}


def test_a_relative_cache_folder_is_kept_as_an_absolute_path(tmp_path, monkeypatch):
    """Workers and trials may change folder; the caches must not follow."""
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}
    use_compile_cache(Path("outputs/sweeps/s/compile_cache"), environ)
    assert environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "outputs/sweeps/s/compile_cache/inductor")
    assert environ["CUDA_CACHE_PATH"] == str(tmp_path / "outputs/sweeps/s/compile_cache/cuda")


def test_the_folder_torch_writes_into_the_environment_on_import_is_not_taken_for_a_users_choice(tmp_path):
    """Importing torch._dynamo (diffusers does, before any sweep starts) sets TORCHINDUCTOR_CACHE_DIR to inductor's
    default folder: the sweep's folder must still win over it, as over no setting at all."""
    code = ("import os, sys, torch._dynamo; from sweeps.compile_cache import use_compile_cache; "
            "assert 'TORCHINDUCTOR_CACHE_DIR' in os.environ; print(use_compile_cache(sys.argv[1])['TORCHINDUCTOR_CACHE_DIR'])")
    environ = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "CUDA_CACHE_PATH")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=environ,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tmp_path / "inductor")


def test_sweep_py_has_cuda_checks_leave_the_driver_unstarted_before_torch_or_diffusers_is_imported():
    """Importing diffusers checks for CUDA, and a check through the CUDA runtime starts the driver, which reads
    CUDA_CACHE_PATH and CUDA_VISIBLE_DEVICES once: the sweeper's JIT cache folder and worker 0's GPU, set after Hydra
    reads the config, would come too late. Checks through NVML leave it unstarted (analysis/PERF.md round 26)."""
    code = ("import importlib.abc, os, sys\n"
            "seen = {}\n"
            "class Watch(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        seen.setdefault(name, os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'))\n"
            "sys.meta_path.insert(0, Watch())\n"
            "import sweep\n"
            "print(seen['torch'], seen['diffusers'])")
    environ = {k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "1"]
