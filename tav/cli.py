"""What every command shares: user errors as one line (never a traceback), and the checks that let read-only
commands refuse bad input before they create, load or write anything.

A bug still shows its traceback: only the errors a user can fix (bad settings, missing or corrupt files, a
folder that cannot be written) are folded into one line. `HYDRA_FULL_ERROR=1` shows every traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from tav.config_schema import ConfigError, accepted, check_writable, validate

# Errors a user can fix; each is reported as one line and exit code 1.
USER_ERRORS = (ValueError, OSError, FloatingPointError, HydraException, OmegaConfBaseException)
# Lines of Hydra's and OmegaConf's messages that repeat what the first line says or point at their internals.
NOISE = ("full_key:", "reference_type=", "object_type=", "See https://", "Config search path", "provider=",
         "Set the environment variable HYDRA_FULL_ERROR", "To append to your config use")


def one_line(error: BaseException) -> str:
    """`error` as one line: multi-line Hydra/OmegaConf messages folded, the OS error behind a failure named, and
    for a value of the wrong type what its key accepts."""
    parts = [error]
    cause = error.__cause__
    if isinstance(cause, (OmegaConfBaseException, OSError)):
        parts.append(cause)
    text = "; ".join(" ".join(line.strip() for line in str(part).splitlines()
                              if line.strip() and not line.strip().startswith(NOISE)).rstrip(".") for part in parts)
    if not isinstance(error, (ConfigError, HydraException, OmegaConfBaseException)):
        text = f"{type(error).__name__}: {text}"
    key = getattr(cause if cause is not None else error, "full_key", None)
    hint = accepted(key) if key else ""
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        hint, key = "", ""
        text += "; every key and its type is in tav/config_schema.py (python train.py --cfg job shows the config)"
    return text + (f"; {key} takes {hint}" if hint else "")


def run_hydra(main: Callable[[], Any], command: str) -> int:
    """Run a `@hydra.main` function; a user error, in composition or in the job, is one line on stderr and 1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1" and not os.environ.get("TAV_ONE_LINE_ERRORS"):
        main()  # the user asked for Hydra's full tracebacks
        return 0
    # Hydra prints a composition error over several lines and exits; with HYDRA_FULL_ERROR=1 it raises instead,
    # so it can be folded here. TAV_ONE_LINE_ERRORS tells a sweep's worker processes (which inherit both) that
    # the user did not ask for tracebacks.
    os.environ.update(HYDRA_FULL_ERROR="1", TAV_ONE_LINE_ERRORS="1")
    try:
        main()
    except USER_ERRORS as error:
        print(f"{command}: {one_line(error)}", file=sys.stderr)
        return 1
    except SystemExit as stop:  # the sweeper and the config check print their one line, then exit
        return stop.code if isinstance(stop.code, int) else 1
    return 0


class CheckConfig(Callback):
    """Refuses a bad setting right after Hydra composes the run's config: before the run's folder is made and
    before anything is loaded (conf/train.yaml's hydra.callbacks). A sweep checks its own (sweeps/sweeper.py)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
            try:
                run_dir = OmegaConf.select(config, "hydra.run.dir")
            except OmegaConfBaseException:
                run_dir = None  # resolves only once the job runs; run_hydra reports a failure to create it
            if run_dir:
                check_writable(run_dir, "hydra.run.dir")
        except ConfigError as error:
            print(f"{Path(sys.argv[0]).name}: {error}", file=sys.stderr)
            # Hydra turns a callback's exception into a warning and runs on: leaving is the only way to refuse.
            raise SystemExit(1) from None


def one_line_usage_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser`, printing a bad argument as one line (argparse prints its whole usage first); exit code 2."""
    def error(message: str) -> None:
        parser.exit(2, f"{parser.prog}: {message}; see {parser.prog} --help\n")

    parser.error = error
    return parser


def check_study_storage(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist: connecting would create an empty database there."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"--storage {url} is not a database URL; pass e.g. "
                         "sqlite:///outputs/sweeps/tav-demo/study.db or postgresql://user@host/db") from None
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
        raise FileNotFoundError(f"no study database at {parsed.database or '(none given)'}; pass --storage "
                                "sqlite:///<sweep folder>/study.db of a sweep that ran (sweep.py writes it)")
