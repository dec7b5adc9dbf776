"""The training configuration: one dataclass is the single source of every option.

Its fields are the YAML keys (``configs/*.yaml``), the ``hcal fit`` flags (``--batch-size`` for
``batch_size``) and what is saved as ``config.yaml`` in every run directory. Values are checked
here, with messages that name the key (or flag), the value found and what is allowed.
Precedence: defaults < ``--config FILE.yaml`` < command-line flags. In a YAML file, a relative
``data_dir`` is relative to the file's folder; a saved config (:meth:`Config.save`, a run's
``config.yaml``) holds an absolute one and no ``run_dir``, so it re-runs from anywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["Config", "load_yaml", "option_fields", "check_option", "describe_allowed", "sweepable_options", "flag"]


def _opt(default: Any, help: str, *, check: str | None = None, choices: tuple | None = None, kind: type | None = None,
         sweep: bool = False):
    """A config field with its help text and value check (see ``_CHECKS``); ``sweep``: ``hcal experiment sweep``
    may vary it."""
    meta = {"help": help, "check": check, "choices": choices, "kind": kind, "sweep": sweep}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


MAX_SEED = 2**32 - 1  # what NumPy's and Lightning's seeding accept

_CHECKS = {
    "positive": (lambda v: v > 0, "> 0"),
    "non_negative": (lambda v: v >= 0, ">= 0"),
    "at_least_one": (lambda v: v >= 1, ">= 1"),
    "fraction": (lambda v: 0 < v < 1, "strictly between 0 and 1"),
    "unit_interval": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "closed_unit_interval": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "seed": (lambda v: 0 <= v <= MAX_SEED, f"in [0, {MAX_SEED}]"),
}


@dataclass
class Config:
    # --- data
    dataset: str = _opt("fashion-mnist", "dataset name (hcal datasets lists them)", kind=str)
    data_dir: str | None = _opt(
        None, "folder holding the dataset's files (default: the dataset's own lookup)", kind=str)
    dataset_args: dict = _opt(
        {}, "extra dataset options, KEY=VALUE (repeatable), e.g. --dataset-arg levels=4", kind=dict)
    val_fraction: float = _opt(
        0.1, "fraction of the training set held out (seeded) for model selection", check="fraction", kind=float)
    num_workers: int = _opt(
        0, "data-loader worker processes (0: load in the main process)", check="non_negative", kind=int)
    augment_on: str = _opt(
        "auto", "where small-image augmentation runs: per image in the loader, or per batch on the training "
        "device (auto: device on a GPU)", choices=("auto", "loader", "device"), kind=str)
    # --- model
    method: str = _opt("hcal", "method name (hcal methods lists them)", kind=str)
    backbone: str = _opt(
        "auto", "backbone name (hcal backbones lists them); auto: the dataset's default", kind=str)
    pretrained: str | None = _opt(
        None, "backbone weights: 'imagenet' (torch hub cache) or a .pth file", kind=str)
    embed_dim: int = _opt(256, "dimension d of the L2-normalised embedding", check="at_least_one", kind=int)
    tau: float = _opt(0.1, "temperature of the prototype InfoNCE loss", check="positive", kind=float, sweep=True)
    epsilon: float = _opt(
        0.01, "prototype perturbation half-width eps (PP)", check="non_negative", kind=float, sweep=True)
    gamma: float = _opt(0.5, "AWA temperature gamma", check="positive", kind=float, sweep=True)
    fa: bool = _opt(True, "feature aggregation: class means at coarse levels (off: per-sample coarse loss)", kind=bool)
    pp: bool = _opt(True, "prototype perturbation (off: eps = 0)", kind=bool)
    awa: bool = _opt(
        True, "adaptive weight adjustment (off: fixed weights 1/m per level, the paper's ablation)", kind=bool)
    mtl: bool = _opt(True, "one shared encoder for all levels (off: an independent model per level)", kind=bool)
    proto_init_std: float = _opt(
        0.01, "standard deviation of the prototypes' normal initialisation (the authors' code: 0.01)",
        check="positive", kind=float)
    fa_mode: str = _opt(
        "means", "FA's coarse terms: class means (the paper), or means+samples (hcal's own: the average of the "
        "class-mean and the per-sample InfoNCE at each coarse level)", choices=("means", "means+samples"), kind=str)
    path_weight: float = _opt(
        0.0, "hcal's own: weight w of the path term in each level's loss, (1 - w) x InfoNCE + w x the level's loss "
        "under the distribution over root-to-leaf paths that consistent decoding reads (0: the paper)",
        check="closed_unit_interval", kind=float, sweep=True)
    ce_weight: float = _opt(
        0.0, "hcal's own: weight w of a linear cross-entropy head per level on the embedding's projection, "
        "trained beside the prototypes: each level's loss is (1 - w) x InfoNCE + w x cross-entropy, and the "
        "level's scores (1 - w) x log softmax(cos/tau) + w x log softmax(linear) (0: the paper)",
        check="closed_unit_interval", kind=float, sweep=True)
    projection: str = _opt(
        "linear", "hcal's own when none: the embedding is the backbone's features, L2-normalised, without the "
        "linear projection to embed_dim (linear: the paper; none: embed_dim is the backbone's width)",
        choices=("linear", "none"), kind=str)
    # --- baselines' hyper-parameters (the papers' defaults)
    experts: int = _opt(3, "shared experts of the MMoE layer (mmoe, dmt)", check="at_least_one", kind=int)
    cmt_lambda_dm: float = _opt(1.0, "weight of CMT's distribution-matching term", check="non_negative", kind=float)
    cmt_lambda_sca: float = _opt(0.5, "weight of CMT's soft co-annotation term", check="non_negative", kind=float)
    dwa_temperature: float = _opt(2.0, "DWA's temperature T", check="positive", kind=float)
    gradnorm_alpha: float = _opt(1.5, "GradNorm's asymmetry alpha", check="non_negative", kind=float)
    cagrad_c: float = _opt(
        0.4, "CAGrad's c: the update's radius around the mean gradient, relative to its norm",
        check="unit_interval", kind=float)
    nashmtl_max_norm: float = _opt(1.0, "Nash-MTL's cap on the norm of the shared update", check="positive", kind=float)
    # --- optimisation
    epochs: int = _opt(10, "training epochs", check="at_least_one", kind=int)
    batch_size: int = _opt(32, "training batch size", check="at_least_one", kind=int)
    lr: float = _opt(0.01, "learning rate of the backbone and projection (SGD)", check="positive", kind=float)
    proto_lr: float = _opt(0.05, "learning rate of the level-1 (finest) prototypes", check="positive", kind=float)
    proto_lr_growth: float = _opt(
        2.0, "prototype learning rate factor per level up (0.05, 0.1, 0.2, ...)", check="positive", kind=float)
    momentum: float = _opt(0.9, "SGD momentum", check="unit_interval", kind=float)
    weight_decay: float = _opt(1e-4, "SGD weight decay", check="non_negative", kind=float)
    scheduler: str = _opt(
        "none", "learning-rate schedule over epochs (none: constant, as the authors' code)",
        choices=("none", "cosine"), kind=str)
    # --- evaluation
    decode: str = _opt(
        "nearest", "prediction: nearest prototype per level, or the best consistent path",
        choices=("nearest", "consistent"), kind=str)
    monitor: str = _opt(
        "val/acc_l1", "validation metric that selects the best checkpoint (higher is better, except the "
        "violation rates val/hvr...)", kind=str)
    # --- engine
    seed: int = _opt(0, "random seed (data split, initialisation, data order, perturbation noise)", check="seed",
                     kind=int)
    deterministic: bool = _opt(False, "use deterministic algorithms (bit-for-bit repeatable on CPU)", kind=bool)
    device: str = _opt("auto", "where to train", choices=("auto", "cpu", "cuda"), kind=str)
    precision: str = _opt("32", "numeric precision", choices=("32", "bf16-mixed", "16-mixed"), kind=str)
    devices: int = _opt(
        1, "devices (GPUs, or CPU processes) per node; > 1 trains with DDP", check="at_least_one", kind=int)
    num_nodes: int = _opt(1, "machines taking part in DDP training", check="at_least_one", kind=int)
    strategy: str = _opt(
        "auto", "distribution strategy (auto: ddp when devices x nodes > 1)", choices=("auto", "ddp"), kind=str)
    channels_last: bool = _opt(
        False, "channels-last memory layout for image models (faster convolutions on GPUs)", kind=bool)
    compile: bool = _opt(
        False, "torch.compile the training loss (backbone and head) and the prediction (first steps are slower "
        "while it compiles)", kind=bool)
    limit_batches: int | None = _opt(
        None, "cap the batches of every train/val/test epoch (smoke runs)", check="at_least_one", kind=int)
    progress: bool = _opt(True, "show a progress bar", kind=bool)
    run_dir: str | None = _opt(None, "run directory (default: runs/<dataset>-<method>-<time>)", kind=str)

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _check_value(f, getattr(self, f.name), f"config key {f.name!r}"))

    # ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "Config":
        _check_keys(data, source)
        return cls(**data)

    def replace(self, **changes: Any) -> "Config":
        return Config.from_dict({**self.to_dict(), **changes})

    def to_file_dict(self) -> dict[str, Any]:
        """What :meth:`save` writes: no ``run_dir`` (a saved config says what to train, the command where:
        ``hcal fit --config RUN_DIR/config.yaml --run-dir NEW``), ``data_dir`` absolute."""
        data = {k: v for k, v in self.to_dict().items() if k != "run_dir"}
        if data["data_dir"] is not None:
            data["data_dir"] = os.path.abspath(data["data_dir"])
        return data

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_file_dict(), sort_keys=False), encoding="utf-8")


_FIELD_NAMES = [f.name for f in fields(Config)]


def _check_keys(data: dict[str, Any], source: str) -> None:
    unknown = [k for k in data if k not in _FIELD_NAMES]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), _FIELD_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed keys: {', '.join(_FIELD_NAMES)}"
        raise ConfigError(f"{source}: unknown key {key!r}{hint}")


def option_fields() -> list[dataclasses.Field]:
    return list(fields(Config))


def option_field(name: str) -> dataclasses.Field:
    return next(f for f in fields(Config) if f.name == name)


def sweepable_options() -> tuple[str, ...]:
    """The options ``hcal experiment sweep --param`` may vary."""
    return tuple(f.name for f in fields(Config) if f.metadata["sweep"])


def flag(name: str, value: Any = None) -> str:
    """The command-line flag of option ``name``: ``--batch-size``; a switch given ``value`` False, ``--no-fa``."""
    if name == "dataset_args":
        return "--dataset-arg"
    if value is False:
        return "--no-" + name.replace("_", "-")
    return "--" + name.replace("_", "-")


def describe_allowed(f: dataclasses.Field) -> str:
    meta = f.metadata
    kind = meta["kind"]
    if meta["choices"]:
        return "one of " + ", ".join(map(str, meta["choices"]))
    base = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}[kind]
    if meta["check"]:
        base += " " + _CHECKS[meta["check"]][1]
    return base


def _check_value(f: dataclasses.Field, value: Any, where: str) -> Any:
    meta = f.metadata
    kind = meta["kind"]
    if value is None:
        if f.default is None:
            return None
        raise ConfigError(f"{where}: expected {describe_allowed(f)}, got null")
    ok = (
        isinstance(value, bool) if kind is bool
        else isinstance(value, int) and not isinstance(value, bool) if kind is int
        else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
        else isinstance(value, kind)
    )
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool) and meta["choices"]:
        value, ok = str(value), True  # YAML reads precision: 32 as an integer
    if not ok:
        raise ConfigError(f"{where}: expected {describe_allowed(f)}, got {value!r}")
    if kind is float:
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{where}: expected {describe_allowed(f)}, got {value!r}")
    if meta["check"]:
        test, text = _CHECKS[meta["check"]]
        if not test(value):
            raise ConfigError(f"{where}: expected {describe_allowed(f)}, got {value!r}")
    if kind is dict:
        value = {str(k): v for k, v in value.items()}
    return value


def check_option(name: str, value: Any, where: str) -> Any:
    """Check one option's value (used by the CLI to name the flag in messages)."""
    return _check_value(option_field(name), value, where)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config into a dict, with one-line errors naming the file (and line); a relative ``data_dir``
    is taken relative to the file's folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--config: {str(path)!r} is a folder, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--config: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config: cannot read {str(path)!r}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config {str(path)!r}{line}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {str(path)!r}: expected a mapping of keys to values, got {type(data).__name__}")
    _check_keys(data, f"config {str(path)!r}")
    for k, v in data.items():
        check_option(k, v, f"config {str(path)!r}: key {k!r}")
    if data.get("data_dir") is not None and not os.path.isabs(data["data_dir"]):
        data["data_dir"] = os.path.normpath(path.parent / data["data_dir"])
    return data
