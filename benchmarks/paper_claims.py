"""Check the HCAL paper's claims against recorded ``hcal experiment`` results, in Markdown.

    .venv/bin/python benchmarks/paper_claims.py --compare experiments/compare-fashion-mnist \\
        --ablation experiments/ablation-fashion-mnist

Claims checked (means over seeds; a difference smaller than the larger of the two standard
deviations is called a tie, not a win):

1. accuracy: HCAL's ACC^k against the best baseline at each level k;
2. consistency: HCAL's HVR against every baseline's;
3. ablation: for each component (MTL, FA, PP, AWA), every pair of configurations that differ in
   that component alone, the change in each ACC^k and in HVR when it is switched on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hcal.experiments.commands import ABLATIONS  # noqa: E402
from hcal.experiments.grid import read_results  # noqa: E402
from hcal.experiments.tables import summarise, table_columns  # noqa: E402


def _summary(folder: Path) -> tuple[dict[str, dict], list[str]]:
    rows = read_results(folder / "results.csv")
    columns = [c for c in table_columns(rows) if c.startswith("test/acc_l") or c == "test/hvr"]
    return {e["label"]: e for e in summarise(rows, columns)}, columns


def _name(column: str) -> str:
    return "HVR" if column == "test/hvr" else "ACC^" + column[len("test/acc_l"):]


def _verdict(mine: tuple[float, float], other: tuple[float, float], lower_better: bool) -> str:
    diff = mine[0] - other[0]
    if abs(diff) < max(mine[1], other[1]):
        return "tie"
    better = diff < 0 if lower_better else diff > 0
    return "better" if better else "worse"


def compare_claims(folder: Path, method: str = "hcal") -> list[str]:
    summary, columns = _summary(folder)
    if method not in summary:
        return [f"({method} not in {folder}/results.csv)"]
    mine = summary[method]
    baselines = {k: v for k, v in summary.items() if k != method}
    out = [f"**{folder.name}** ({mine['n']} seeds per method)", "",
           "| claim | HCAL | best baseline | verdict |", "|---|---:|---:|---|"]
    for c in columns:
        if c == "test/hvr":
            continue
        best = max(baselines, key=lambda k: baselines[k][c][0])
        b = baselines[best][c]
        out.append(f"| {_name(c)}: HCAL > best baseline | {100 * mine[c][0]:.2f} ± {100 * mine[c][1]:.2f} | "
                   f"{best} {100 * b[0]:.2f} ± {100 * b[1]:.2f} | {_verdict(mine[c], b, False)} |")
    verdicts = {k: _verdict(mine["test/hvr"], v["test/hvr"], True) for k, v in baselines.items()}
    lower = sorted(k for k, v in verdicts.items() if v == "better")
    ties = sorted(k for k, v in verdicts.items() if v == "tie")
    higher = sorted(k for k, v in verdicts.items() if v == "worse")
    out.append(f"| HVR: HCAL < every baseline | {100 * mine['test/hvr'][0]:.2f} ± {100 * mine['test/hvr'][1]:.2f} | "
               f"lower than {len(lower)}, tied with {len(ties)}, higher than {len(higher)} of {len(verdicts)} | "
               f"{'holds' if len(lower) == len(verdicts) else 'does not hold'} |")
    out += ["", f"HVR lower than: {', '.join(lower) or 'none'}; tied: {', '.join(ties) or 'none'}; "
                f"higher than: {', '.join(higher) or 'none'}."]
    return out


def ablation_claims(folder: Path) -> list[str]:
    summary, columns = _summary(folder)
    present = {label: ABLATIONS[label] for label in summary if label in ABLATIONS}
    out = [f"**{folder.name}**: the change when one component is switched on, the others fixed "
           "(ACC in points, positive = better; HVR in points, negative = better)", "",
           "| component | from → to | " + " | ".join(f"Δ {_name(c)}" for c in columns) + " |",
           "|---|---|" + "---:|" * len(columns)]
    for component in ("mtl", "fa", "pp", "awa"):
        for off, s_off in present.items():
            for on, s_on in present.items():
                if s_off[component] or not s_on[component]:
                    continue
                # a pair differs in this component alone (the paper's single-task row pairs with MTL+FA+PP)
                if any(s_on.get(k) != s_off.get(k) for k in {*s_on, *s_off} if k != component):
                    continue
                cells = []
                for c in columns:
                    d = 100 * (summary[on][c][0] - summary[off][c][0])
                    noise = 100 * max(summary[on][c][1], summary[off][c][1])
                    cells.append(f"{d:+.2f}" + ("" if abs(d) >= noise else " (tie)"))
                out.append(f"| {component.upper()} | {off} → {on} | " + " | ".join(cells) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", type=Path, action="append", default=[], help="a compare output folder")
    parser.add_argument("--ablation", type=Path, action="append", default=[], help="an ablation output folder")
    args = parser.parse_args()
    for folder in args.compare:
        print("\n".join(compare_claims(folder)) + "\n")
    for folder in args.ablation:
        print("\n".join(ablation_claims(folder)) + "\n")


if __name__ == "__main__":
    main()
