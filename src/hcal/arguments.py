"""The ``hcal`` command line's parser: commands, their flags and the checks of their values.

Every option that is a :class:`~hcal.config.Config` field (all of ``fit``'s; ``--decode``,
``--device``, ``--limit-batches``, ... of the other commands) is declared from its field: its type,
help, default and check come from ``config.py``. Nothing here imports torch or Lightning, so
``hcal --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from . import __version__
from .config import check_option, describe_allowed, flag, option_field, option_fields, sweepable_options

__all__ = ["build_parser", "options_given"]


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


def _list_of(kind, what: str):
    """An argument type: a comma-separated list of ``kind`` values."""
    def parse(text: str) -> list:
        try:
            return [kind(t.strip()) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}") from None
    return parse


_names, _ints, _floats = _list_of(str, "names"), _list_of(int, "integers"), _list_of(float, "numbers")


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


def options_given(args: argparse.Namespace) -> dict[str, Any]:
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
    fit.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint; "
                     "with --epochs N, extend it (finished or not) to N epochs")
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
    test.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                      help="write the per-class report and a confusion matrix per level (default: on)")
    test.add_argument("--report-dir", metavar="DIR", help="where the report goes (default: RUN_DIR/report when "
                      "--ckpt is in a run directory; replaced by each hcal test)")
    test.add_argument("--debug", **debug)

    pred = sub.add_parser("predict", help="predict a label and a score per level for new inputs",
                          description="Predict with a checkpoint: image files or folders (image models) or .npy "
                                      "files of feature vectors (vector models). One CSV or JSON-lines row per input.")
    pred.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    pred.add_argument("inputs", nargs="+", metavar="INPUT", help="image files/folders, or .npy files")
    pred.add_argument("--output", metavar="FILE", help="write the rows here (default: print them)")
    pred.add_argument("--format", choices=("csv", "jsonl"), help="CSV or JSON lines (default: jsonl for an --output "
                      "ending in .jsonl, else csv)")
    pred.add_argument("--top-k", type=int, default=0, metavar="K", help="also each level's K most probable classes")
    pred.add_argument("--probabilities", action="store_true", help="also each level's whole probability vector")
    pred.add_argument("--skip-bad", action="store_true", help="an input that cannot be predicted (non-finite values, "
                      "unreadable or empty file) gets a row with an error column instead of stopping hcal")
    _add_option(pred, "decode", "decoding (default: the checkpoint's)")
    _add_option(pred, "batch_size", "inputs per forward pass", default=256)
    pred.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    pred.add_argument("--debug", **debug)

    export = sub.add_parser("export", help="a checkpoint as one TorchScript or ONNX file for serving",
                            description="Export a checkpoint's prediction (scaling, normalisation, model, decoding, "
                                        "probabilities) with its hierarchy and preprocessing as metadata.")
    export.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    export.add_argument("--format", required=True, choices=("torchscript", "onnx"), help="file format")
    export.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    _add_option(export, "decode", "decoding (default: the checkpoint's)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    export.add_argument("--debug", **debug)

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
    _add_option(swp, "method", "the method whose option is swept (default: --config's, else hcal)")
    for p in (comp, abl, swp):
        p.add_argument("--also-decode", type=_names, default=[], metavar="D1,...", help="also score every run's "
                       f"best checkpoint with: {', '.join(option_field('decode').metadata['choices'])} (extra rows)")
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
