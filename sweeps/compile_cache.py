"""Where a sweep keeps what torch compiled: in its own folder, beside the study, so that the graphs outlive the machine.

A sweep worker's first trial compiles the training step (~100 s on an H100 from a cold start); a process that finds
the graphs in this folder loads them: a resumed sweep's first step took 20.7 s instead of 98.8 s on an H100
(analysis/PERF.md round 25). torch keeps its graphs in /tmp, gone with a machine that comes and goes.

The CUDA driver's JIT cache (cuDNN's attention kernels, ~10 s to build cold, round 18) is not moved here: the driver
reads CUDA_CACHE_PATH when it starts, and importing diffusers starts it (torch.accelerator.is_available) before a
sweep's config names its folder, so the variable came too late (the folder stayed empty on an H100, round 25).
CUDA_CACHE_PATH set in the environment before `python sweep.py` works, as for any process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

# Inductor keeps Triton's kernels under its own folder, so this one variable moves all of torch.compile's cache.
INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"


def torch_default() -> str:
    """The value torch itself puts in TORCHINDUCTOR_CACHE_DIR when nobody set it. Importing torch._dynamo (diffusers
    does) writes inductor's default folder into the variable, so that value does not mean a user chose it. The one
    place that reaches into torch's private module; inductor reads the variable again at every use."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return os.path.abspath(default_cache_dir())


def use_compile_cache(folder: Path | None, environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Point torch.compile's cache at `folder`/inductor, for this process and the workers it starts, unless the
    environment names another folder (the user's choice stands); `folder` None leaves torch's default. Returns the
    folder in effect (None where the variable is unset)."""
    if folder is not None and environ.get(INDUCTOR_CACHE) in (None, torch_default()):
        environ[INDUCTOR_CACHE] = str(Path(folder).resolve() / "inductor")
    return environ.get(INDUCTOR_CACHE)
