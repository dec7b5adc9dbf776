from __future__ import annotations

from ..errors import ConfigError
from ..inputs import InputSpec
from ..registry import Registry

BACKBONES: Registry = Registry("backbone")


def check_input_kind(name: str, spec: InputSpec, kinds: tuple[str, ...]) -> None:
    if spec.kind not in kinds:
        raise ConfigError(
            f"backbone {name!r} takes {' or '.join(kinds)} inputs but the dataset gives "
            f"{spec.describe()}; choose a backbone for {spec.kind} inputs (hcal backbones lists them)"
        )
