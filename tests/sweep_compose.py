"""In-process composition as the entrypoints do it, for tests where the process itself is not the point."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


def planned(*overrides: str):
    """`python sweep.py -m <overrides> hydra.sweeper.dry_run=true` in-process: the sweeper's plan (key check,
    composed and checked trials) and the protocol it would record; ValueError as the command's one line."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext, RunMode

    from sweeps.sweeper import OptunaSweeper

    with initialize_config_dir(str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        cfg = loader.load_configuration("sweep", list(overrides), run_mode=RunMode.MULTIRUN)
        settings = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
        settings.pop("_target_")
        sweeper = OptunaSweeper(**settings)
        sweeper.config = cfg
        sweeper.hydra_context = HydraContext(config_loader=loader, callbacks=None)
        return sweeper.prepare(list(cfg.hydra.overrides.task))


def composed(*overrides: str) -> DictConfig:
    """`python train.py <overrides> --cfg job` in-process."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", list(overrides))
