"""`python export.py`: pick a trial of a study (or a run's best step) and write a portable export folder.

    python export.py --storage sqlite:///outputs/sweeps/tav-demo/study.db --study tav-demo --out exports/best
    python export.py ... --weighted score=1                      # largest weighted sum of scores
    python export.py ... --pareto text_alignment/mean=2,style_probe/mean=1   # a Pareto point (default: equal weights)
    python export.py ... --trial 3                               # that trial
    python export.py --run outputs/runs/2026-01-01/12-00-00 --out exports/run   # a plain run folder

The folder's layout is in tav/export.py; render from it with generate.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from sweeps import select
from sweeps.study import open_storage
from tav import export
from tav.cli import check_study_storage, one_line_usage_errors
from tav.config_schema import check_weight_file, check_writable
from tav.tracking import LOG_NAME, read_log


def parse_weights(text: str | None) -> dict[str, float]:
    """"a=1,b/mean=0.5" -> {"a": 1.0, "b/mean": 0.5}."""
    weights = {}
    for item in filter(None, (text or "").split(",")):
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise ValueError(f"weight '{item}' is not name=number, e.g. text_alignment/mean=1")
        weights[name.strip()] = float(value)
    return weights


def run_config(run_dir: Path) -> dict:
    """The run's resolved config: as its log recorded it (already redacted), else Hydra's copy, resolved here."""
    log = run_dir / LOG_NAME
    configs = [r["config"] for r in read_log(log) if r["kind"] == "config"] if log.is_file() else []
    if configs:
        return configs[-1]
    hydra_config = run_dir / ".hydra" / "config.yaml"
    if not hydra_config.is_file():
        raise FileNotFoundError(f"{run_dir} has neither {LOG_NAME} nor .hydra/config.yaml; export a run folder")
    cfg = OmegaConf.load(hydra_config)
    cfg.output_dir = str(run_dir)  # it was ${hydra:runtime.output_dir}, which resolves only inside Hydra
    return OmegaConf.to_container(cfg, resolve=True)


def choose(args: argparse.Namespace) -> export.Selection:
    if args.run:
        return export.select_run(Path(args.run))
    import optuna

    storage = open_storage(args.storage, key="--storage")
    try:
        study = optuna.load_study(study_name=args.study, storage=storage)
    except KeyError:
        raise ValueError(f"no study '{args.study}' in that storage; pass --study with one of "
                         f"{optuna.get_all_study_names(storage)}") from None
    if args.trial is not None:
        return select.select_trial(study, select.trial_by_number(study, args.trial), f"trial {args.trial}")
    if args.weighted is not None:
        weights = parse_weights(args.weighted)
        return select.select_trial(study, select.best_weighted(study, weights), f"weighted {weights}")
    weights = parse_weights(args.pareto)
    policy = "best trial" if len(study.directions) == 1 else f"Pareto point, weights {weights or 'equal'}"
    return select.select_trial(study, select.best_pareto(study, weights), policy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--storage", help="the study's database URL, e.g. sqlite:///outputs/sweeps/tav-demo/study.db")
    source.add_argument("--run", help="a run folder (train.py's output) instead of a study")
    parser.add_argument("--study", default="tav-demo", help="study name (default: tav-demo)")
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--trial", type=int, help="export this trial number")
    policy.add_argument("--weighted", metavar="NAME=W,...", help="the complete trial maximising sum(W * score NAME)")
    policy.add_argument("--pareto", metavar="NAME=W,...", default="",
                        help="the Pareto trial maximising the weighted, [0,1]-rescaled objectives (default)")
    parser.add_argument("--out", required=True, help="the export folder to create (must be new or empty)")
    parser.add_argument("--dtype", choices=list(export.DTYPES), default="bf16",
                        help="dtype of the stored weights (default bf16, half of fp32; fp32 renders bit-exactly)")
    parser.add_argument("--merge", action="store_true", help="also write the whole inflated UNet to <out>/unet")
    args = one_line_usage_errors(parser).parse_args(argv)
    try:
        if args.storage:
            check_study_storage(args.storage)  # connecting to a missing SQLite file would create it
        check_writable(args.out, "--out")
        selection = choose(args)
        for name in (export.TRAINABLE, export.INVERTED):  # checked before the export folder is made
            check_weight_file(selection.checkpoint_dir / name, "export another step or trial (--trial N), or train again")
        manifest = export.write_export(selection, run_config(selection.run_dir), Path(args.out), args.dtype, args.merge)
    except (ValueError, OSError) as error:
        print(f"export: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"export": args.out, "origin": manifest["origin"], "step": manifest["step"],
                      "seeds": manifest["seeds"], "score": manifest["score"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
