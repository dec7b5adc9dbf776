"""The ``hcal`` command line: fit, test, predict, export, the experiments, visualize, and listings of every registry.

The parser (its flags declared from :class:`~hcal.config.Config`'s fields) is in
:mod:`hcal.arguments`. The process-wide settings of a command-line run,
quieter Lightning logs and warnings (:mod:`hcal.quiet`), hcal's warnings as one line each, and the SIGINT/SIGTERM
handlers (a stop at a safe point, :mod:`hcal.signals`), are made here (:func:`main`), never by the library. Each
command imports the engine when it runs (the ``_cmd_*`` functions), so ``hcal --help`` and argument
errors answer without loading torch and Lightning.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Sequence

from .arguments import build_parser, options_given
from .config import Config, load_yaml
from .errors import ConfigError, HcalError, Stopped, one_line_warnings, storage_error
from .quiet import quiet_lightning
from .signals import stop_on_signals

__all__ = ["main", "build_parser"]

def config_from_args(args: argparse.Namespace) -> Config:
    """defaults < --config YAML < flags."""
    base = load_yaml(args.config) if args.config else {}
    return Config.from_dict({**base, **options_given(args)})


def _cmd_fit(args: argparse.Namespace) -> int:
    from .engine import fit
    from .engine.rundir import resume_config
    if args.resume:
        if args.config:
            raise ConfigError("--resume takes the run's own config.yaml; drop --config")
        fit(resume_config(args.resume, options_given(args)), resume=args.resume, command=args.command_line)
    else:
        fit(config_from_args(args), overwrite=args.overwrite, command=args.command_line)
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    from .engine import evaluate
    evaluate(args.ckpt, output=args.output, overwrite=args.overwrite, report=args.report, report_dir=args.report_dir,
             **options_given(args))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .engine import predict
    predict(args.ckpt, args.inputs, output=args.output, format=args.format, top_k=args.top_k,
            probabilities=args.probabilities, skip_bad=args.skip_bad, overwrite=args.overwrite, **options_given(args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .engine import export
    export(args.ckpt, args.format, args.out, overwrite=args.overwrite, **options_given(args))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from . import BACKBONES, DATASETS, METHODS, WEIGHTINGS
    registry = {"methods": METHODS, "backbones": BACKBONES, "datasets": DATASETS, "weightings": WEIGHTINGS}[
        args.command]
    width = max(len(n) for n in registry.names())
    for entry in registry.entries():
        ref = f"  [{entry.reference}]" if entry.reference else ""
        print(f"{entry.name:<{width}}  {entry.description}{ref}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from .experiments import RERUN_HINT
    try:
        return _run_experiment(args)
    except Stopped as e:
        raise e.with_hint(RERUN_HINT) from None


def _run_experiment(args: argparse.Namespace) -> int:
    from .experiments import DEFAULT_ABLATIONS, ablation, compare, sweep
    config = config_from_args(args)
    out = Path(args.out) if args.out else Path("experiments") / f"{args.experiment}-{config.dataset}"
    if args.experiment in ("compare", "ablation"):
        if args.experiment == "compare":
            run_grid, names = compare, args.methods
        else:
            run_grid, names = ablation, args.configs or DEFAULT_ABLATIONS
        run_grid(config, names, args.seeds, out, paper=args.paper, reference=args.reference,
                 also_decode=tuple(args.also_decode))
    else:
        sweep(config, args.param, args.values, args.seeds, out, also_decode=tuple(args.also_decode))
    return 0


def _cmd_visualize(args: argparse.Namespace) -> int:
    from .experiments import visualize
    visualize(args.ckpt, init_ckpt=args.init_ckpt, out=args.out, samples=args.samples, perplexity=args.perplexity,
              **options_given(args))
    return 0


COMMANDS = {"fit": _cmd_fit, "test": _cmd_test, "predict": _cmd_predict, "export": _cmd_export,
            "experiment": _cmd_experiment, "visualize": _cmd_visualize}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["hcal", *argv])  # what run.json records
    command = COMMANDS.get(args.command, _cmd_list)
    if command is not _cmd_list:
        quiet_lightning()
    try:
        with one_line_warnings(f"hcal {args.command}"), stop_on_signals():
            return command(args)
    except Stopped as e:
        print(f"hcal {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # outside the handlers' block (not the main thread)
        print(f"hcal {args.command}: interrupted", file=sys.stderr)
        return 130
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
