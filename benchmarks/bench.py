"""Measured, not assumed: hcal's training-step cost, data-loader throughput and HCAL's scaling.

Run from the repository root (after ``bash setup.sh``)::

    .venv/bin/python benchmarks/bench.py                 # everything, ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/bench.py --quick          # fewer repeats, smaller sizes
    .venv/bin/python benchmarks/bench.py --only step scaling --json out.json
    .venv/bin/python benchmarks/bench.py --only step --compile   # also the torch.compile'd steps
    HCAL_FASHION_MNIST=DIR HCAL_CIFAR10=FILE ...     # where the data is (defaults: the system
                                                     # Fashion-MNIST, ../shared/data/cifar10-jpeg.tar.gz)

Every number in one run comes from the same machine and process; ratios are what to compare
across machines. Sections:

* ``step``: samples/s of an HCAL training step (backbone, projection, prototypes of every level,
  FA, PP, AWA, backward, SGD step; the loss by plain autograd through the concept modules) against
  a plain cross-entropy step (same backbone, one linear classifier on the finest level, same
  batch), for the small CNN (Fashion-MNIST's tree, batch 32 and 128), ResNet-18 (100/20 classes)
  and pre-computed features with the ``mlp`` backbone at the shape of
  ``../shared/data/dbpedia-minilm.npz`` (384-d inputs, 219/70/9 classes). ``--compile`` adds the
  same steps with the loss function (backbone and head) compiled by ``torch.compile`` on both
  sides. Interleaved repeats, medians.
* ``parts``: the features + mlp step with PP, FA, AWA or all three off: where HCAL's extra cost goes.
* ``loader``: images/s the data loader delivers (train split, augmentation included) against the
  images/s the model trains at, for fashion-mnist, cifar10 (if ../shared/data has it) and a
  generated 224-px image folder. A loader/model ratio above 1 means the loader keeps up.
* ``scaling``: time and memory of HCAL's loss (forward + backward, 256 embeddings of d=256) as
  the classes per level grow (1k to 100k prototypes) and as the levels grow (2 to 7). Memory is
  the bytes autograd saves for the backward pass plus the prototypes and their gradients; peak
  GPU memory on CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hcal.backbones import create_backbone  # noqa: E402
from hcal.config import Config  # noqa: E402
from hcal.engine.module import create_optimizer  # noqa: E402
from hcal.hierarchy import Hierarchy  # noqa: E402
from hcal.inputs import InputSpec  # noqa: E402
from hcal.methods import create_method  # noqa: E402
from hcal.weighting import create_weighting, weighting_from_config  # noqa: E402

SHARED = Path(os.environ.get("HCAL_CIFAR10", ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))
FASHION_MNIST = os.environ.get("HCAL_FASHION_MNIST")  # a folder of the idx files; default: the dataset's own lookup


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} ({threads} threads), {gpu}"


def commit() -> str:
    """The git commit benchmarked (``+changes`` when the working tree differs from it)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def tree(sizes_fine_first: list[int]) -> Hierarchy:
    """A hierarchy with the given classes per level (finest first), children spread evenly."""
    paths = []
    for leaf in range(sizes_fine_first[0]):
        path, idx = [f"l1c{leaf}"], leaf
        for k in range(1, len(sizes_fine_first)):
            idx = idx * sizes_fine_first[k] // sizes_fine_first[k - 1]
            path.append(f"l{k + 1}c{idx}")
        paths.append(tuple(reversed(path)))
    return Hierarchy(paths)


def median_time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ---------------------------------------------------------------------------------- step
def step_cases(args) -> list[tuple[str, InputSpec, Hierarchy, int]]:
    """(backbone, input, tree, batch) of every step row."""
    small = InputSpec(kind="image", channels=1, size=28)
    # HCAL's head adds a fixed number of small operations per step: the same backbone at a 4x
    # batch shows how that fixed cost amortises.
    cases = [("small-cnn", small, fmnist_tree(), args.batch_size),
             ("small-cnn", small, fmnist_tree(), 4 * args.batch_size)]
    if not args.quick or torch.cuda.is_available():
        cases.append(("resnet18-cifar", InputSpec(kind="image", channels=3, size=32), tree([100, 20]), args.batch_size))
    # pre-computed features, the shape of ../shared/data/dbpedia-minilm.npz: 384-d, 219 > 70 > 9 classes
    cases.append(("mlp", InputSpec(kind="vector", dim=384), tree([219, 70, 9]), args.batch_size))
    return cases


def bench_step(args, device) -> list[dict]:
    rows = []
    for backbone, spec, h, b in step_cases(args):
        for compiled in (False, True) if args.compile else (False,):
            rows.append(_step_row(args, device, backbone, spec, h, b, compiled))
    return rows


def bench_parts(args, device) -> list[dict]:
    """Where HCAL's extra cost goes on the features + mlp path: the same step with PP, FA or all
    three components off (each alternated with its own CE step, so the ratios are comparable)."""
    spec, h, b = InputSpec(kind="vector", dim=384), tree([219, 70, 9]), args.batch_size
    rows = []
    variants = (("HCAL", {}), ("--no-pp", {"pp": False}), ("--no-fa", {"fa": False}), ("--no-awa", {"awa": False}),
                ("--no-pp --no-fa --no-awa", {"pp": False, "fa": False, "awa": False}))
    for label, switches in variants:
        row = _step_row(args, device, "mlp", spec, h, b, False, **switches)
        rows.append({"variant": label, **row})
    return rows


def _step_row(args, device, backbone: str, spec: InputSpec, h: Hierarchy, b: int, compiled: bool, **switches) -> dict:
    torch.manual_seed(0)
    cfg = Config(backbone=backbone, **switches)
    hcal = create_method("hcal", h, lambda: create_backbone(backbone, spec), cfg).to(device).train()
    name, kwargs = hcal.weighting_spec(cfg)
    awa = weighting_from_config(name, h.num_levels, cfg, **kwargs)
    hcal_opt = create_optimizer(hcal.param_groups(cfg), cfg)  # hcal's own optimiser, for both sides
    ce_backbone = create_backbone(backbone, spec).to(device).train()
    ce_head = nn.Linear(ce_backbone.out_features, h.sizes[0]).to(device)
    ce_opt = create_optimizer([{"params": [*ce_backbone.parameters(), *ce_head.parameters()]}], cfg)
    shape = (b, spec.dim) if spec.kind == "vector" else (b, spec.channels, spec.size, spec.size)
    x = torch.randn(*shape, device=device)
    y = h.leaf_paths()[torch.randint(h.sizes[0], (b,))].to(device)

    def ce_loss(x, y):
        return F.cross_entropy(ce_head(ce_backbone(x)), y[:, 0])

    # as hcal fit --compile does: the method's whole loss function compiled (backbone and head)
    hcal_losses = torch.compile(hcal.level_losses) if compiled else hcal.level_losses
    ce_losses = torch.compile(ce_loss) if compiled else ce_loss

    def hcal_step():
        total, _ = awa(hcal_losses(x, y))
        hcal_opt.zero_grad(set_to_none=True)
        total.backward()
        hcal_opt.step()

    def ce_step():
        loss = ce_losses(x, y)
        ce_opt.zero_grad(set_to_none=True)
        loss.backward()
        ce_opt.step()

    fns = (hcal_step, ce_step)
    slow = backbone.startswith("resnet") and device.type == "cpu"
    started = time.perf_counter()
    for fn in fns * (3 if compiled else 2):  # warm-up (and compilation)
        fn()
    warmup_s = time.perf_counter() - started
    times = [[] for _ in fns]
    if device.type == "cpu" and not slow:
        # short CPU steps: alternate single steps, as the load of a shared CPU drifts within seconds
        for _ in range(60 if args.quick else 300):
            for fn, ts in zip(fns, times):
                ts.append(median_time(fn, 1, device))
    else:
        steps = 4 if slow else (10 if args.quick else 30)
        for _ in range(3 if args.quick else 7):  # interleaved, so drifts in machine load hit both
            for fn, ts in zip(fns, times):
                ts.append(median_time(fn, steps, device))
    t_h, t_c = statistics.median(times[0]), statistics.median(times[1])
    return {
        "backbone": backbone, "batch": b, "levels": h.num_levels, "classes": list(h.sizes), "compiled": compiled,
        "hcal_samples_per_s": b / t_h, "ce_samples_per_s": b / t_c, "hcal_over_ce_time": t_h / t_c,
        "warmup_s": warmup_s,
    }


def fmnist_tree() -> Hierarchy:
    from hcal.datasets.fashion_mnist import fashion_mnist_hierarchy

    return fashion_mnist_hierarchy()


# ---------------------------------------------------------------------------------- loader
def _make_folder(root: Path, n_per_class: int, size: int = 256) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_per_class), ("test", 2)):
        for leaf in ("cat", "dog", "car", "bus"):
            folder = root / split / ("animal" if leaf in ("cat", "dog") else "vehicle") / leaf
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
                Image.fromarray(arr).save(folder / f"{i}.jpg", quality=90)
    return root


def _loader_rate(dataset, batch: int, workers: int, batches: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=False, generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not throughput
    n, t = 0, time.perf_counter()
    for _ in range(batches):
        try:
            xb, _ = next(it)
        except StopIteration:
            break
        n += xb.shape[0]
    return n / (time.perf_counter() - t)


def _model_rate(bundle, backbone: str, batch: int, steps: int, device) -> float:
    from hcal.engine.module import HierarchicalModule

    cfg = Config(dataset=bundle.name, backbone=backbone, batch_size=batch)
    module = HierarchicalModule(cfg.to_dict(), bundle.hierarchy.to_dict(), bundle.input_spec.to_dict()).to(device)
    opt = create_optimizer([{"params": list(module.parameters())}], cfg)
    xs = torch.stack([bundle.train[i][0] for i in range(batch)]).to(device)
    ys = torch.stack([bundle.train[i][1] for i in range(batch)]).to(device)

    def step():
        loss = module.weighting(module.method.level_losses(module.prepare_inputs(xs), ys))[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    return batch / median_time(step, steps, device)


def bench_loader(args, device) -> list[dict]:
    from hcal.datasets import DATASETS, create_dataset

    rows = []
    tmp = tempfile.TemporaryDirectory()
    cases = [("fashion-mnist", FASHION_MNIST, {}, "small-cnn")]
    if "cifar10" in DATASETS and SHARED.is_file():
        cases.append(("cifar10", str(SHARED), {}, "resnet18-cifar" if device.type == "cuda" else "small-cnn"))
    else:
        print(f"loader: skipping cifar10 ({SHARED} or the cifar10 dataset is missing)")
    if "folder" in DATASETS:
        root = _make_folder(Path(tmp.name) / "imgs", 16 if args.quick else 64)
        cases.append(("folder", str(root), {"size": 224}, "resnet18"))
    for name, data_dir, dargs, backbone in cases:
        try:
            t = time.perf_counter()
            bundle = create_dataset(name, data_dir, seed=0, val_fraction=0.1, **dargs)
            load_s = time.perf_counter() - t
        except Exception as e:  # noqa: BLE001 - a benchmark reports and moves on
            print(f"loader: skipping {name}: {e}")
            continue
        batches = 20 if args.quick else 60
        for workers in sorted({0, min(2, os.cpu_count() or 1), min(8, os.cpu_count() or 1)}):
            loader = _loader_rate(bundle.train, args.batch_size, workers, batches)
            steps = 2 if backbone == "resnet18" and device.type == "cpu" else 10
            model = _model_rate(bundle, backbone, args.batch_size, steps, device)
            rows.append({"dataset": name, "backbone": backbone, "workers": workers, "load_s": load_s,
                         "loader_images_per_s": loader, "model_images_per_s": model,
                         "loader_over_model": loader / model})
    tmp.cleanup()
    return rows


# ---------------------------------------------------------------------------------- scaling
def _loss_cost(sizes: list[int], device, repeats: int, n: int = 256, d: int = 256) -> tuple[float, int]:
    from hcal.methods.hcal import HCAL

    class Fixed(nn.Module):
        out_features = d

        def forward(self, x):
            return x

    h = tree(sizes)
    torch.manual_seed(0)
    model = HCAL(h, Fixed, embed_dim=d).to(device)
    awa = create_weighting("awa", h.num_levels)
    x = torch.randn(n, d, device=device)
    y = h.leaf_paths()[torch.randint(sizes[0], (n,))].to(device)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    def run():
        model.zero_grad(set_to_none=True)
        awa(model.level_losses(x, y))[0].backward()

    run()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        memory = torch.cuda.max_memory_allocated() - base
    else:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model.zero_grad(set_to_none=True)
            total = awa(model.level_losses(x, y))[0]
        total.backward()
        params = sum(p.numel() * p.element_size() for p in model.prototypes)
        memory = sum(saved) + 2 * params  # saved activations + prototypes and their gradients
    return median_time(run, repeats, device), memory


def bench_scaling(args, device) -> dict:
    repeats = 3 if args.quick else 7
    classes = [1_000, 3_000, 10_000, 30_000, 100_000] if not args.quick else [1_000, 10_000, 30_000]
    by_classes = []
    for c in classes:
        sizes = [c, max(2, c // 10), max(2, c // 100)]
        t, mem = _loss_cost(sizes, device, repeats)
        by_classes.append({"classes": sizes, "prototypes": sum(sizes), "seconds": t, "bytes": mem})
    by_levels = []
    for m in range(2, 8):
        sizes = [1000] * m  # same classes per level: cost should grow linearly in m
        t, mem = _loss_cost(sizes, device, repeats)
        by_levels.append({"levels": m, "prototypes": sum(sizes), "seconds": t, "bytes": mem})
    return {"by_classes": by_classes, "by_levels": by_levels}


# ---------------------------------------------------------------------------------- report
def report(results: dict) -> str:
    out = [f"machine: {results['machine']}", f"commit: {results.get('commit', 'unknown')}",
           f"command: {results['command']}", ""]
    if "step" in results:
        out.append("training step, samples/s (compiled: the loss function, backbone and head, by torch.compile on both "
                   "sides)")
        out.append(f"{'backbone':<16}{'batch':>6}  "
                   f"{'classes':<14}{'compiled':>9}{'HCAL':>10}{'CE':>10}{'HCAL/CE time':>15}"
                   f"{'warm-up s':>11}")
        for r in results["step"]:
            out.append(f"{r['backbone']:<16}{r['batch']:>6}  "
                       f"{str(r['classes']):<14}{'yes' if r['compiled'] else 'no':>9}"
                       f"{r['hcal_samples_per_s']:>10.0f}{r['ce_samples_per_s']:>10.0f}{r['hcal_over_ce_time']:>15.3f}"
                       f"{r['warmup_s']:>11.1f}")
        out.append("")
    if "parts" in results:
        out.append("features + mlp (384-d, 219/70/9 classes), HCAL's step with components off, samples/s")
        out.append(f"{'variant':<26}{'HCAL':>10}{'CE':>10}{'HCAL/CE time':>15}")
        for r in results["parts"]:
            out.append(f"{r['variant']:<26}{r['hcal_samples_per_s']:>10.0f}{r['ce_samples_per_s']:>10.0f}{r['hcal_over_ce_time']:>15.3f}")
        out.append("")
    if "loader" in results:
        out.append("data loader vs model, images/s")
        out.append(f"{'dataset':<15}{'backbone':<16}{'workers':>8}{'load s':>8}{'loader':>10}{'model':>10}"
                   f"{'loader/model':>14}")
        for r in results["loader"]:
            out.append(f"{r['dataset']:<15}{r['backbone']:<16}{r['workers']:>8}{r['load_s']:>8.1f}"
                       f"{r['loader_images_per_s']:>10.0f}{r['model_images_per_s']:>10.0f}{r['loader_over_model']:>14.2f}")
        out.append("")
    if "scaling" in results:
        s = results["scaling"]
        out.append("HCAL loss, forward+backward, 256 embeddings, d=256")
        out.append(f"{'classes per level':<26}{'prototypes':>11}{'ms':>9}{'MiB':>9}{'ms/1k protos':>14}")
        for r in s["by_classes"]:
            out.append(f"{str(r['classes']):<26}{r['prototypes']:>11}{1e3 * r['seconds']:>9.2f}"
                       f"{r['bytes'] / 2**20:>9.1f}{1e6 * r['seconds'] / r['prototypes']:>14.3f}")
        out.append(f"{'levels (1000 classes each)':<26}{'prototypes':>11}{'ms':>9}{'MiB':>9}{'ms/level':>14}")
        for r in s["by_levels"]:
            out.append(f"{r['levels']:<26}{r['prototypes']:>11}{1e3 * r['seconds']:>9.2f}"
                       f"{r['bytes'] / 2**20:>9.1f}{1e3 * r['seconds'] / r['levels']:>14.3f}")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=("step", "parts", "loader", "scaling"),
                   default=["step", "parts", "loader", "scaling"])
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--compile", action="store_true", help="step: also the steps with the loss compiled by "
                                                          "torch.compile")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    results = {"machine": machine(), "commit": commit(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
               "batch_size": args.batch_size}
    sections = (("step", bench_step), ("parts", bench_parts), ("loader", bench_loader), ("scaling", bench_scaling))
    for section, fn in sections:
        if section in args.only:
            t = time.perf_counter()
            results[section] = fn(args, device)
            print(f"[{section}: {time.perf_counter() - t:.0f} s]", file=sys.stderr)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
