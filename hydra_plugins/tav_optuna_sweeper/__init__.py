"""Hydra registers sweepers only from classes defined under the `hydra_plugins` namespace; this names ours.

The implementation is sweeps.sweeper.OptunaSweeper.
"""

from sweeps.sweeper import OptunaSweeper


class TavOptunaSweeper(OptunaSweeper):
    """The sweeper that conf/hydra/sweeper/tav_optuna.yaml selects."""
