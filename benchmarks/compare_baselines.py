"""Train every registered method on Fashion-MNIST with one budget and tabulate the test metrics.

    .venv/bin/python benchmarks/compare_baselines.py                       # all methods, the budget below
    .venv/bin/python benchmarks/compare_baselines.py --methods hcal ew --limit-batches 100

Each method runs as its own ``hcal fit`` process with the same flags (dataset, backbone, epochs,
batch cap, batch size, seed, learning-rate schedule, nearest decoding); only ``--method`` changes.
Run directories go to ``--out`` (one per method). The script prints a Markdown table (ACC per
level, HVR, full-path accuracy, hierarchical F1, wall time) and writes it, with the raw metrics
and the machine, to ``--out/summary.json`` and ``--out/table.md``. docs/baselines.md records one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def registered_methods() -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from hcal.methods import METHODS

    return METHODS.names()


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=None, help="methods to run (default: every registered one)")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--backbone", default="small-cnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit-batches", type=int, default=313,
                        help="batches per train/val/test epoch (313 x 32 covers the 10,000 test images)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/baselines", help="folder for the run directories and the summary")
    args = parser.parse_args(argv)

    methods = args.methods or registered_methods()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--dataset", args.dataset, "--backbone", args.backbone, "--epochs", str(args.epochs),
              "--limit-batches", str(args.limit_batches), "--batch-size", str(args.batch_size),
              "--seed", str(args.seed), "--decode", "nearest", "--no-progress", "--overwrite"]
    hcal = [sys.executable, "-m", "hcal", "fit"]
    rows = []
    for method in methods:
        run_dir = out / method
        cmd = [*hcal, "--method", method, *common, "--run-dir", str(run_dir)]
        load = load_average()
        print(f"[{time.strftime('%H:%M:%S')}] {method}: {' '.join(cmd[1:])} (load {load})", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
            rows.append({"method": method, "failed": proc.stderr.strip().splitlines()[-1:], "wall_s": round(wall, 1),
                         "load_before": load})
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        info = json.loads((run_dir / "run.json").read_text())
        rows.append({"method": method, "wall_s": round(wall, 1), "train_s": info["train_seconds"], "load_before": load,
                     "metrics": metrics})
        print(f"    {wall:.0f} s, acc_l1 {metrics['test/acc_l1']:.4f}, hvr {metrics['test/hvr']:.4f}", flush=True)

    first = next(r["metrics"] for r in rows if "metrics" in r)
    levels = sorted(int(k.split("acc_l")[1]) for k in first if k.startswith("test/acc_l"))
    head = ["method"] + [f"ACC^{k}" for k in levels] + ["HVR", "full-path acc", "hF1", "wall time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "metrics" not in r:
            lines.append(f"| {r['method']} | failed: {r['failed']} |")
            continue
        m = r["metrics"]
        cells = [r["method"]] + [f"{m[f'test/acc_l{k}']:.4f}" for k in levels]
        cells += [f"{m['test/hvr']:.4f}", f"{m['test/full_path_acc']:.4f}", f"{m['test/hf1']:.4f}",
                  f"{r['wall_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.processor() or 'unknown CPU'}"
    (out / "table.md").write_text(table + "\n")
    (out / "summary.json").write_text(json.dumps({"command": [*hcal, "--method", "METHOD", *common], "machine": machine,
                                                 "rows": rows}, indent=2) + "\n")
    return 0 if all("metrics" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
