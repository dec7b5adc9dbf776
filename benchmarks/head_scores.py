"""Score an HCAL checkpoint trained with ``--ce-weight`` through one of its two heads alone.

    .venv/bin/python benchmarks/head_scores.py --head prototypes|ce|both -- \\
        --ckpt RUN_DIR/checkpoints/best.ckpt --decode consistent --no-report --output m.json

A model trained with ``--ce-weight w`` has, per level, the prototypes (scores ``cos / tau``) and a
linear cross-entropy head on the same projection; ``hcal test`` scores it with their mixed
log-probabilities (``both``). This script runs ``hcal test`` (every argument after ``--``) with the
level scores replaced by the prototype head's alone (``prototypes``) or the linear head's alone
(``ce``): which of the two heads of one trained encoder predicts better (docs/results.md,
"hcal's own cross-entropy head"). A diagnostic, not a method: it patches ``HCAL.forward`` for this
process only.
"""

from __future__ import annotations

import argparse
import sys

import torch

from hcal import prototype_loss
from hcal.cli import main as hcal_main
from hcal.methods.hcal import HCAL

HEADS = ("prototypes", "ce", "both")


def head_forward(head: str):
    """``HCAL.forward`` with the level scores of ``head`` alone (``both``: the method's own)."""
    mixed = HCAL.forward

    def forward(self: HCAL, x: torch.Tensor) -> list[torch.Tensor]:
        if head == "both":
            return mixed(self, x)
        raw = self.project(x)
        if head == "ce":
            return [linear(r) for linear, r in zip(self.ce_heads, raw)]
        protos = self.level_prototypes()
        return [prototype_loss.prototype_logits(f, p, self.tau) for f, p in zip(self._unit(raw), protos)]

    return forward


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, test_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head", choices=HEADS, required=True, help="which head's scores hcal test reads")
    args = parser.parse_args(ours)
    if "--ckpt" not in test_args:
        parser.error("give hcal test's arguments after --, at least --ckpt RUN_DIR/checkpoints/best.ckpt")
    ckpt = test_args[test_args.index("--ckpt") + 1]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    if args.head == "ce" and not any(".ce_heads." in key for key in state):
        print(f"head_scores.py: --head ce: checkpoint {ckpt} has no cross-entropy heads "
              "(trained without --ce-weight); choose --head prototypes or both", file=sys.stderr)
        return 2
    HCAL.forward = head_forward(args.head)
    return hcal_main(["test", *test_args])


if __name__ == "__main__":
    sys.exit(main())
