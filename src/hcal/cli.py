"""The ``hcal`` command line: fit, test, predict, and listings of every registry."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import yaml

from . import __version__
from .config import Config, check_option, describe_allowed, load_yaml, option_fields
from .errors import ConfigError, HcalError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (no usage block), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


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


def _add_config_options(parser: argparse.ArgumentParser, skip: set[str] = frozenset()) -> None:
    for f in option_fields():
        if f.name in skip:
            continue
        kind, meta = f.metadata["kind"], f.metadata
        default = f.default if f.name != "dataset_args" else {}
        help_text = f"{meta['help']} [{describe_allowed(f)}; default: {default}]"
        if kind is bool:
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        elif kind is dict:
            parser.add_argument("--dataset-arg", dest=f.name, action="append", type=_dataset_arg,
                                metavar="KEY=VALUE", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=argparse.SUPPRESS,
                                metavar=f.name.upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hcal", description="Hierarchy-consistent classification (HCAL and baselines).")
    parser.add_argument("--version", action="version", version=f"hcal {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    debug = {"action": "store_true", "default": argparse.SUPPRESS, "help": "show full tracebacks on errors"}

    fit = sub.add_parser("fit", help="train a model, select it on validation, test it once",
                         description="Train, select the best epoch on the validation split, evaluate once on test.")
    fit.add_argument("--config", metavar="FILE.yaml", help="YAML file of options (keys as below, with underscores)")
    fit.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing run in --run-dir")
    fit.add_argument("--debug", **debug)
    _add_config_options(fit)

    test = sub.add_parser("test", help="evaluate a checkpoint on a test set",
                          description="Evaluate a checkpoint on its dataset's test split (or another dataset's).")
    test.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file (RUN_DIR/checkpoints/best.ckpt)")
    test.add_argument("--dataset", help="dataset name (default: the checkpoint's)")
    test.add_argument("--data-dir", help="dataset folder (default: the checkpoint's)")
    test.add_argument("--decode", choices=("nearest", "consistent"), help="decoding (default: the checkpoint's)")
    test.add_argument("--limit-batches", type=int, metavar="N", help="evaluate at most N batches")
    test.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to evaluate")
    test.add_argument("--output", metavar="FILE.json", help="also write the metrics to this JSON file")
    test.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    test.add_argument("--debug", **debug)

    pred = sub.add_parser("predict", help="predict a label and a score per level for new inputs",
                          description="Predict with a checkpoint: image files or folders (image models) or .npy "
                                      "files of feature vectors (vector models). One CSV row per input.")
    pred.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    pred.add_argument("inputs", nargs="+", metavar="INPUT", help="image files/folders, or .npy files")
    pred.add_argument("--output", metavar="FILE.csv", help="write the CSV here (default: print it)")
    pred.add_argument("--decode", choices=("nearest", "consistent"), help="decoding (default: the checkpoint's)")
    pred.add_argument("--batch-size", type=int, default=256, help="inputs per forward pass")
    pred.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    pred.add_argument("--debug", **debug)

    exp = sub.add_parser("experiment", help="the paper's experiments: compare, ablation, sweep",
                         description="Run a grid of fits with identical data and budget; resumable.")
    exp.add_argument("--debug", **debug)
    kinds = exp.add_subparsers(dest="experiment", required=True, metavar="KIND", parser_class=_Parser)
    comp = kinds.add_parser("compare", help="methods x seeds, a table like the paper's Table 1")
    comp.add_argument("--methods", type=_names, default=["hcal"], metavar="A,B,...", help="methods (hcal methods lists them)")
    abl = kinds.add_parser("ablation", help="HCAL's components on/off, a table like the paper's Table 2")
    abl.add_argument("--configs", type=_names, metavar="A,B,...", help="configurations (default: the eight of Table 2)")
    for p in (comp, abl):
        p.add_argument("--paper", action="store_true", help="print the paper's published rows beside, where bundled")
        p.add_argument("--reference", metavar="FILE.csv",
                       help="print published rows beside: a CSV with 'label' and metric columns in %% "
                            "(acc_l1, acc_l2, ..., hvr, full_path_acc, hf1)")
    swp = kinds.add_parser("sweep", help="one hyper-parameter over values (the paper's Fig. 5)")
    swp.add_argument("--param", required=True, choices=("gamma", "epsilon", "tau"), help="what to sweep")
    swp.add_argument("--values", required=True, type=_floats, metavar="V1,V2,...", help="the values")
    for p in (comp, abl, swp):
        p.add_argument("--seeds", type=_ints, default=[0, 1, 2], metavar="S1,S2,...", help="seeds (default 0,1,2)")
        p.add_argument("--out", metavar="DIR", help="output folder (default: experiments/<kind>-<dataset>)")
        p.add_argument("--config", metavar="FILE.yaml", help="YAML of the shared options")
        p.add_argument("--debug", **debug)
        _add_config_options(p, skip={"method", "seed", "run_dir"})

    vis = sub.add_parser("visualize", help="t-SNE of test embeddings and prototypes (paper Fig. 6-7)",
                         description="t-SNE maps of test embeddings with each level's prototypes, at initialisation "
                                     "(checkpoints/init.ckpt) and after training; one PNG per level and one with all.")
    vis.add_argument("--ckpt", required=True, metavar="PATH", help="trained checkpoint (RUN_DIR/checkpoints/best.ckpt)")
    vis.add_argument("--init-ckpt", metavar="PATH", help="checkpoint at initialisation (default: init.ckpt beside --ckpt)")
    vis.add_argument("--data-dir", help="dataset folder (default: the checkpoint's)")
    vis.add_argument("--samples", type=int, default=2000, help="test samples to map (default 2000)")
    vis.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    vis.add_argument("--seed", type=int, default=0, help="sample choice and t-SNE seed")
    vis.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/figures)")
    vis.add_argument("--debug", **debug)

    for family in ("methods", "backbones", "datasets", "weightings"):
        p = sub.add_parser(family, help=f"list the registered {family}")
        p.add_argument("--debug", **debug)
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[Config, dict[str, Any]]:
    """defaults < --config YAML < flags; also returns the flags given explicitly."""
    given = {f.name: getattr(args, f.name) for f in option_fields() if hasattr(args, f.name)}
    if "dataset_args" in given:
        given["dataset_args"] = dict(given["dataset_args"])
    for name, value in given.items():
        check_option(name, value, "--dataset-arg" if name == "dataset_args" else _flag(name))
    base = load_yaml(args.config) if getattr(args, "config", None) else {}
    return Config.from_dict({**base, **given}), given


RESUME_MAY_CHANGE = {"progress"}


def _cmd_fit(args: argparse.Namespace) -> int:
    from .engine import fit

    if args.resume:
        from pathlib import Path

        if args.config:
            raise ConfigError("--resume takes the run's own config.yaml; drop --config")
        config_path = Path(args.resume) / "config.yaml"
        if not config_path.is_file():
            raise ConfigError(f"--resume {args.resume!r}: not a run directory (no config.yaml)")
        saved = Config.from_dict(load_yaml(config_path), source=str(config_path))
        _, given = config_from_args(argparse.Namespace(**{**vars(args), "config": None}))
        differ = [k for k, v in given.items() if k not in RESUME_MAY_CHANGE and getattr(saved, k) != v]
        if differ:
            detail = ", ".join(f"{k}: run has {getattr(saved, k)!r}, flag gives {given[k]!r}" for k in differ)
            raise ConfigError(f"--resume {args.resume!r}: flags disagree with the run's config ({detail})")
        fit(saved.replace(**{k: v for k, v in given.items() if k in RESUME_MAY_CHANGE}), resume=args.resume)
        return 0
    config, _ = config_from_args(args)
    fit(config, overwrite=args.overwrite)
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    from .engine import evaluate

    if args.limit_batches is not None:
        check_option("limit_batches", args.limit_batches, "--limit-batches")
    evaluate(args.ckpt, dataset=args.dataset, data_dir=args.data_dir, decode=args.decode,
             limit_batches=args.limit_batches, device=args.device, output=args.output, overwrite=args.overwrite)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .engine import predict

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    predict(args.ckpt, args.inputs, output=args.output, decode=args.decode, batch_size=args.batch_size,
            overwrite=args.overwrite)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .backbones import BACKBONES
    from .datasets import DATASETS
    from .methods import METHODS
    from .weighting import WEIGHTINGS

    registry = {"methods": METHODS, "backbones": BACKBONES, "datasets": DATASETS, "weightings": WEIGHTINGS}[args.command]
    width = max(len(n) for n in registry.names())
    for entry in registry.entries():
        ref = f"  [{entry.reference}]" if entry.reference else ""
        print(f"{entry.name:<{width}}  {entry.description}{ref}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .experiments import ablation, compare, sweep
    from .experiments.commands import DEFAULT_ABLATIONS

    config, _ = config_from_args(args)
    out = Path(args.out) if args.out else Path("experiments") / f"{args.experiment}-{config.dataset}"
    if args.experiment == "compare":
        compare(config, args.methods, args.seeds, out, paper=args.paper, reference=args.reference)
    elif args.experiment == "ablation":
        ablation(config, args.configs or DEFAULT_ABLATIONS, args.seeds, out, paper=args.paper, reference=args.reference)
    else:
        sweep(config, args.param, args.values, args.seeds, out)
    return 0


def _cmd_visualize(args: argparse.Namespace) -> int:
    from .experiments import visualize

    visualize(args.ckpt, init_ckpt=args.init_ckpt, out=args.out, samples=args.samples, perplexity=args.perplexity,
              seed=args.seed, data_dir=args.data_dir)
    return 0


COMMANDS = {"fit": _cmd_fit, "test": _cmd_test, "predict": _cmd_predict, "experiment": _cmd_experiment,
            "visualize": _cmd_visualize}


def _one_line(error: Exception) -> str:
    """The message alone: a data-loader worker re-raises an error with the worker's traceback in its text."""
    import re

    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(error).__name__
    return re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS.get(args.command, _cmd_list)
    try:
        return command(args)
    except HcalError as e:
        if args.debug:
            raise
        print(f"hcal {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hcal {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, or a failure hcal does not know how to explain
        if args.debug:
            raise
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"hcal {args.command}: internal error: {type(e).__name__}: {detail} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
