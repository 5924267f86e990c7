"""`python sweep.py -m [overrides]`: an Optuna study over train.py's config (conf/sweep.yaml).

Each trial is one training job (train.run_job) that reports to its live trial; see sweeps/sweeper.py.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tav.known_warnings import silence_known_warnings
from train import run_job

silence_known_warnings()  # trials run in this process: the console shows the study, not library notices

@hydra.main(version_base="1.3", config_path="conf", config_name="sweep")
def main(cfg: DictConfig) -> dict:
    return run_job(cfg)


if __name__ == "__main__":
    main()
