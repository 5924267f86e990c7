"""The scripts here take their own options, then `--` and Hydra overrides for the runs they start."""

from __future__ import annotations


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the script's own arguments, the Hydra overrides after `--`)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    return argv[:cut], argv[cut + 1:]
