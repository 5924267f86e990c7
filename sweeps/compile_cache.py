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

# Each cache's environment variable -> its subfolder. Inductor keeps Triton's kernels under its own folder.
CACHE_VARIABLES = {"TORCHINDUCTOR_CACHE_DIR": "inductor"}


def torch_default(variable: str) -> str | None:
    """The value torch itself puts in `variable` when nobody set it. Importing torch._dynamo (diffusers does)
    writes inductor's default folder into TORCHINDUCTOR_CACHE_DIR, so that value does not mean a user chose it.
    The one place that reaches into torch's private module; inductor reads the variable again at every use."""
    if variable != "TORCHINDUCTOR_CACHE_DIR":
        return None
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return os.path.abspath(default_cache_dir())


def use_compile_cache(folder: Path | None, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Point torch.compile's cache at a subfolder of `folder`, for this process and the workers it starts, unless
    the environment names another one (the user's choice stands); `folder` None leaves torch's default. Returns
    each variable's value in effect."""
    if folder is not None:
        for variable, subfolder in CACHE_VARIABLES.items():
            if environ.get(variable) in (None, torch_default(variable)):
                environ[variable] = str(Path(folder).resolve() / subfolder)
    return {variable: environ[variable] for variable in CACHE_VARIABLES if variable in environ}
