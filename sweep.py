"""`python sweep.py -m [overrides]`: an Optuna study over train.py's config (conf/sweep.yaml).

Each trial is one training job (train.run_job) that reports to its live trial; see sweeps/sweeper.py.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from train import run_job


@hydra.main(version_base="1.3", config_path="conf", config_name="sweep")
def main(cfg: DictConfig) -> dict:
    return run_job(cfg)


if __name__ == "__main__":
    main()
