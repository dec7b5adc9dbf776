"""The ``hcal`` command line: fit, test, predict, the experiments, visualize, and listings of every registry.

Every option that is a :class:`~hcal.config.Config` field (all of ``fit``'s; ``--decode``,
``--device``, ``--limit-batches``, ... of the other commands) is declared from its field: its type,
help, default and check come from ``config.py``. The process-wide settings of a command-line run,
quieter Lightning logs and warnings, hcal's warnings as one line each, and the SIGINT/SIGTERM
handlers (a stop at a safe point), are made here (:func:`main`), never by the library.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import yaml

from . import __version__
from .backbones import BACKBONES
from .config import (
    Config,
    check_option,
    describe_allowed,
    flag,
    load_yaml,
    option_field,
    option_fields,
    sweepable_options,
)
from .datasets import DATASETS
from .engine import evaluate, fit, predict
from .engine.rundir import resume_config
from .engine.stopping import stop_on_signals
from .errors import ConfigError, HcalError, Stopped, one_line_warnings, storage_error
from .experiments import DEFAULT_ABLATIONS, RERUN_HINT, ablation, compare, sweep, visualize
from .methods import METHODS
from .weighting import WEIGHTINGS

__all__ = ["main", "build_parser"]

LIGHTNING_NOISE = (
    ".*does not have many workers.*",
    ".*Experiment logs directory.*exists and is not empty.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*The number of training batches .* is smaller than the logging interval.*",
    ".*on_epoch=True.* not.*",
    ".*GPU available but not used.*",
    ".*You are using `torch.load` with `weights_only=False`.*",
    ".*isinstance.treespec, LeafSpec.*",
    ".*It is recommended to use `self.log\\(.*sync_dist=True.*",  # torchmetrics already synced them
)


def _quiet_lightning() -> None:
    """Lightning's INFO lines and the warnings that do not concern an hcal user, off for this process."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in LIGHTNING_NOISE:
        warnings.filterwarnings("ignore", message=pattern)


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (no usage block), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _dataset_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        return key, value


def _split(text: str, kind, what: str) -> list:
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}") from None


def _names(text: str) -> list[str]:
    return _split(text, str, "names")


def _ints(text: str) -> list[int]:
    return _split(text, int, "integers")


def _floats(text: str) -> list[float]:
    return _split(text, float, "numbers")


def _add_option(parser: argparse.ArgumentParser, name: str, help: str | None = None, default: Any = None) -> None:
    """The flag of Config field ``name``; another command than fit gives its own ``help`` (and ``default``)."""
    f = option_field(name)
    kind = f.metadata["kind"]
    if help is None:  # fit's options: the field's own help and default
        text = f"{f.metadata['help']} [{describe_allowed(f)}; default: {'{}' if kind is dict else f.default}]"
    else:  # another command's: its help says what an unset option means
        text = f"{help} [{describe_allowed(f)}{'' if default is None else f'; default: {default}'}]"
    common = {"dest": name, "default": argparse.SUPPRESS if default is None else default, "help": text}
    if kind is bool:
        parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, **common)
    elif kind is dict:
        parser.add_argument(flag(name), action="append", type=_dataset_arg, metavar="KEY=VALUE", **common)
    else:
        parser.add_argument(flag(name), type=kind, metavar=name.upper(), **common)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The Config-field options given (or defaulted by the command), each checked as config.py checks it."""
    given = {f.name: getattr(args, f.name) for f in option_fields() if hasattr(args, f.name)}
    if "dataset_args" in given:
        given["dataset_args"] = dict(given["dataset_args"])
    return {name: check_option(name, value, flag(name)) for name, value in given.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hcal", description="Hierarchy-consistent classification (HCAL and baselines).")
    parser.add_argument("--version", action="version", version=f"hcal {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    debug = {"action": "store_true", "default": argparse.SUPPRESS, "help": "show full tracebacks on errors"}
    every_option = [f.name for f in option_fields()]

    fit = sub.add_parser("fit", help="train a model, select it on validation, test it once",
                         description="Train, select the best epoch on the validation split, evaluate once on test.")
    fit.add_argument("--config", metavar="FILE.yaml", help="YAML file of options (keys as below, with underscores)")
    fit.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing run in --run-dir")
    fit.add_argument("--debug", **debug)
    for name in every_option:
        _add_option(fit, name)

    test = sub.add_parser("test", help="evaluate a checkpoint on a test set",
                          description="Evaluate a checkpoint on its dataset's test split (or another dataset's).")
    test.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file (RUN_DIR/checkpoints/best.ckpt)")
    _add_option(test, "dataset", "dataset name (default: the checkpoint's)")
    _add_option(test, "data_dir", "dataset folder (default: the checkpoint's)")
    _add_option(test, "decode", "decoding (default: the checkpoint's)")
    _add_option(test, "limit_batches", "evaluate at most N batches")
    _add_option(test, "device", "where to evaluate", default="auto")
    test.add_argument("--output", metavar="FILE.json", help="also write the metrics to this JSON file")
    test.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    test.add_argument("--debug", **debug)

    pred = sub.add_parser("predict", help="predict a label and a score per level for new inputs",
                          description="Predict with a checkpoint: image files or folders (image models) or .npy "
                                      "files of feature vectors (vector models). One CSV row per input.")
    pred.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    pred.add_argument("inputs", nargs="+", metavar="INPUT", help="image files/folders, or .npy files")
    pred.add_argument("--output", metavar="FILE.csv", help="write the CSV here (default: print it)")
    _add_option(pred, "decode", "decoding (default: the checkpoint's)")
    _add_option(pred, "batch_size", "inputs per forward pass", default=256)
    pred.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    pred.add_argument("--debug", **debug)

    exp = sub.add_parser("experiment", help="the paper's experiments: compare, ablation, sweep",
                         description="Run a grid of fits with identical data and budget; resumable.")
    exp.add_argument("--debug", **debug)
    kinds = exp.add_subparsers(dest="experiment", required=True, metavar="KIND", parser_class=_Parser)
    comp = kinds.add_parser("compare", help="methods x seeds, a table like the paper's Table 1")
    comp.add_argument("--methods", type=_names, default=["hcal"], metavar="A,B,...",
                      help="methods (hcal methods lists them)")
    abl = kinds.add_parser("ablation", help="HCAL's components on/off, a table like the paper's Table 2")
    abl.add_argument("--configs", type=_names, metavar="A,B,...", help="configurations (default: the eight of Table 2)")
    for p in (comp, abl):
        p.add_argument("--paper", action="store_true", help="print the paper's published rows beside, where bundled")
        p.add_argument("--reference", metavar="FILE.csv",
                       help="print published rows beside: a CSV with 'label' and metric columns in %% "
                            "(acc_l1, acc_l2, ..., hvr, full_path_acc, hf1)")
    swp = kinds.add_parser("sweep", help="one hyper-parameter over values (the paper's Fig. 5)")
    swp.add_argument("--param", required=True, choices=sweepable_options(), help="what to sweep")
    swp.add_argument("--values", required=True, type=_floats, metavar="V1,V2,...", help="the values")
    for p in (comp, abl, swp):
        p.add_argument("--seeds", type=_ints, default=[0, 1, 2], metavar="S1,S2,...", help="seeds (default 0,1,2)")
        p.add_argument("--out", metavar="DIR", help="output folder (default: experiments/<kind>-<dataset>)")
        p.add_argument("--config", metavar="FILE.yaml", help="YAML of the shared options")
        p.add_argument("--debug", **debug)
        for name in every_option:
            if name not in ("method", "seed", "run_dir"):
                _add_option(p, name)

    vis = sub.add_parser("visualize", help="t-SNE of test embeddings and prototypes (paper Fig. 6-7)",
                         description="t-SNE maps of test embeddings with each level's prototypes, at initialisation "
                                     "(checkpoints/init.ckpt) and after training; one PNG per level and one with all.")
    vis.add_argument("--ckpt", required=True, metavar="PATH",
                     help="trained checkpoint (RUN_DIR/checkpoints/best.ckpt)")
    vis.add_argument("--init-ckpt", metavar="PATH", help="checkpoint at initialisation (default: init.ckpt beside "
                                                         "--ckpt)")
    _add_option(vis, "data_dir", "dataset folder (default: the checkpoint's)")
    vis.add_argument("--samples", type=int, default=2000, help="test samples to map (default 2000)")
    vis.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    _add_option(vis, "seed", "sample choice and t-SNE seed")
    vis.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/figures)")
    vis.add_argument("--debug", **debug)

    for family in ("methods", "backbones", "datasets", "weightings"):
        p = sub.add_parser(family, help=f"list the registered {family}")
        p.add_argument("--debug", **debug)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """defaults < --config YAML < flags."""
    base = load_yaml(args.config) if args.config else {}
    return Config.from_dict({**base, **_options(args)})


def _cmd_fit(args: argparse.Namespace) -> int:
    if args.resume:
        if args.config:
            raise ConfigError("--resume takes the run's own config.yaml; drop --config")
        fit(resume_config(args.resume, _options(args)), resume=args.resume)
        return 0
    config = config_from_args(args)
    fit(config, overwrite=args.overwrite)
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    evaluate(args.ckpt, output=args.output, overwrite=args.overwrite, **_options(args))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    predict(args.ckpt, args.inputs, output=args.output, overwrite=args.overwrite, **_options(args))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    registry = {"methods": METHODS, "backbones": BACKBONES, "datasets": DATASETS, "weightings": WEIGHTINGS}[
        args.command]
    width = max(len(n) for n in registry.names())
    for entry in registry.entries():
        ref = f"  [{entry.reference}]" if entry.reference else ""
        print(f"{entry.name:<{width}}  {entry.description}{ref}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = Path(args.out) if args.out else Path("experiments") / f"{args.experiment}-{config.dataset}"
    if args.experiment == "compare":
        compare(config, args.methods, args.seeds, out, paper=args.paper, reference=args.reference)
    elif args.experiment == "ablation":
        ablation(config, args.configs or DEFAULT_ABLATIONS, args.seeds, out, paper=args.paper,
                 reference=args.reference)
    else:
        sweep(config, args.param, args.values, args.seeds, out)
    return 0


def _cmd_visualize(args: argparse.Namespace) -> int:
    visualize(args.ckpt, init_ckpt=args.init_ckpt, out=args.out, samples=args.samples, perplexity=args.perplexity,
              **_options(args))
    return 0


COMMANDS = {"fit": _cmd_fit, "test": _cmd_test, "predict": _cmd_predict, "experiment": _cmd_experiment,
            "visualize": _cmd_visualize}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS.get(args.command, _cmd_list)
    _quiet_lightning()
    try:
        with one_line_warnings(f"hcal {args.command}"), stop_on_signals():
            return command(args)
    except Stopped as e:
        print(f"hcal {args.command}: {e.with_hint(RERUN_HINT) if args.command == 'experiment' else e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # hcal's one-line errors; else a bug, or a failure hcal does not know how to explain
        if args.debug:
            raise
        error = e if isinstance(e, HcalError) else storage_error(e)  # a full disk, a read-only folder
        if error is not None:
            print(f"hcal {args.command}: error: {error}", file=sys.stderr)
            return 2
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"hcal {args.command}: internal error: {type(e).__name__}: {detail} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
