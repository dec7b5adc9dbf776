"""The classical anchors on pre-computed features, scored with hcal's metrics.

    .venv/bin/pip install -e ".[bench]"     # scikit-learn is installed with hcal; HiClass is not
    .venv/bin/python benchmarks/anchors.py --data ../shared/data/dbpedia-minilm.npz --seeds 0,1,2 \\
        --out experiments/anchors-dbpedia

Three anchors, on the same splits hcal uses for ``--dataset features`` with each seed (train, the
seeded validation split, test):

* ``logreg per level``: one multinomial logistic regression per level (scikit-learn, lbfgs,
  standardised features), each level predicted independently (its HVR is what independent
  classifiers give);
* ``logreg per level · consistent``: the same logistic regressions, their log-probabilities decoded
  by hcal's ``consistent`` decoding (the tree path with the highest summed log-probability: what
  ``--decode consistent`` does for hcal's models);
* ``hiclass LCPN``: HiClass's local classifier per parent node with the same logistic regression
  (predictions are tree paths, HVR 0 by construction).

The regularisation ``C`` is chosen on the validation split from ``--Cs`` (the best full-path
accuracy), then the model is refitted on train + validation: the anchors get every labelled
sample hcal sees, and their own model selection. Writes ``results.csv`` in the format of ``hcal
experiment`` (one row per anchor and seed, metrics as fractions) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hcal.datasets import create_dataset  # noqa: E402
from hcal.experiments.grid import write_results  # noqa: E402
from hcal.experiments.tables import markdown_table  # noqa: E402
from hcal.metrics import HierarchicalMetrics  # noqa: E402


def _split(ds) -> tuple[np.ndarray, torch.Tensor]:
    idx = ds.indices
    return ds.inputs[idx].numpy(), ds.targets[idx]


def _score(hierarchy, preds: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    metrics = HierarchicalMetrics(hierarchy)
    metrics.update(preds, target)
    return metrics.compute()


def _logreg(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def per_level(hierarchy, C: float, x_fit, y_fit, x_eval) -> torch.Tensor:
    """(n, m) predictions, finest first: one logistic regression per level."""
    columns = [_logreg(C).fit(x_fit, y_fit[:, k].numpy()).predict(x_eval) for k in range(hierarchy.num_levels)]
    return torch.as_tensor(np.stack(columns, 1), dtype=torch.long)


def per_level_consistent(hierarchy, C: float, x_fit, y_fit, x_eval) -> torch.Tensor:
    """(n, m) predictions, finest first: the same per-level logistic regressions, decoded by hcal's
    ``consistent`` decoding (the tree path with the highest summed log-probability)."""
    from hcal.decoding import decode

    log_probs = []
    for k, size in enumerate(hierarchy.sizes):
        model = _logreg(C).fit(x_fit, y_fit[:, k].numpy())
        full = np.full((len(x_eval), size), -1e9)  # a class absent from the fitted data is never predicted
        full[:, model.classes_] = model.predict_log_proba(x_eval)
        log_probs.append(torch.as_tensor(full))
    return decode(log_probs, hierarchy, "consistent")[0]


def hiclass_lcpn(hierarchy, C: float, x_fit, y_fit, x_eval) -> torch.Tensor:
    """(n, m) predictions, finest first: HiClass's local classifier per parent node."""
    try:
        from hiclass import LocalClassifierPerParentNode
    except ImportError:
        raise SystemExit("benchmarks/anchors.py needs HiClass: .venv/bin/pip install -e '.[bench]'") from None
    names = np.array([hierarchy.decode(row.tolist()) for row in y_fit], dtype=object)  # coarsest first
    model = LocalClassifierPerParentNode(local_classifier=_logreg(C), n_jobs=1)
    model.fit(x_fit, names)
    predicted = model.predict(x_eval)
    return hierarchy.encode_many([tuple(str(v) for v in row) for row in predicted])


ANCHORS = {"logreg per level": per_level, "logreg per level · consistent": per_level_consistent,
           "hiclass LCPN": hiclass_lcpn}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a features .npz (hcal's features format)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--Cs", default="0.01,0.1,1,10", help="regularisation values tried on the validation split")
    p.add_argument("--anchors", default=",".join(ANCHORS), help=f"which anchors (default: all of {', '.join(ANCHORS)})")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    chosen = [a.strip() for a in args.anchors.split(",") if a.strip()]
    for name in chosen:
        if name not in ANCHORS:
            p.error(f"--anchors: unknown anchor {name!r}; choose from: {', '.join(ANCHORS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    Cs = [float(c) for c in args.Cs.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        bundle = create_dataset("features", args.data, seed=seed, val_fraction=0.1)
        h = bundle.hierarchy
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (_split(s) for s in (bundle.train, bundle.val, bundle.test))
        x_all, y_all = np.concatenate([x_tr, x_va]), torch.cat([y_tr, y_va])
        for label, anchor in ((a, ANCHORS[a]) for a in chosen):
            started = time.perf_counter()
            val = {C: _score(h, anchor(h, C, x_tr, y_tr, x_va), y_va)["full_path_acc"] for C in Cs}
            best = max(Cs, key=lambda C: (val[C], -C))
            test = _score(h, anchor(h, best, x_all, y_all, x_te), y_te)
            seconds = time.perf_counter() - started
            accs = " / ".join(f"{test[f'acc_l{k + 1}']:.4f}" for k in range(h.num_levels))
            print(f"{label}, seed {seed}: C = {best:g} (val full path {val[best]:.4f}); test ACC "
                  f"{accs}, HVR {test['hvr']:.4f}, "
                  f"full path {test['full_path_acc']:.4f} ({seconds:.0f} s with the C search)", flush=True)
            rows.append({"experiment": "anchors", "label": label, "seed": seed, "C": best,
                         **{f"test/{k}": v for k, v in test.items()}, "train_seconds": seconds, "run_dir": ""})
            write_results(rows, args.out / "results.csv")
    print()
    print(markdown_table(rows, "anchor"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
