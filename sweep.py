"""`python sweep.py -m [overrides]`: an Optuna study over train.py's config (conf/sweep.yaml).

Each trial is one training job (train.run_job) that reports to its live trial; see sweeps/sweeper.py.
"""

from __future__ import annotations

import os
import sys

# CUDA availability checks through NVML, which do not start the CUDA driver: it reads CUDA_VISIBLE_DEVICES (a
# worker's GPU) and CUDA_CACHE_PATH (the sweep folder's JIT cache) when it starts, and the sweeper sets both after
# Hydra has read the config. Set before any import of torch or diffusers (sweeps/compile_cache.py says why).
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

import hydra
from omegaconf import DictConfig

from tav.cli import run_hydra
from tav.config_schema import validate
from train import run_job


@hydra.main(version_base="1.3", config_path="conf", config_name="sweep")
def main(cfg: DictConfig) -> dict:
    validate(cfg)  # the sweeper checked each searched range's ends; a sampled combination can still be refused
    return run_job(cfg)


if __name__ == "__main__":
    sys.exit(run_hydra(main, "sweep.py"))
