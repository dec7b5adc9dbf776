"""``hcal visualize``: t-SNE maps of test embeddings with each level's prototypes (paper Fig. 6-7).

One joint t-SNE (scikit-learn) embeds the sampled test embeddings and every level's
(normalised) prototypes, so prototypes land among the samples they attract. Per state (at
initialisation, from ``checkpoints/init.ckpt``, and after training) it writes one PNG per level,
points coloured by that level's true class, prototypes as stars (level 1) or circles (coarser
levels), and one PNG with all levels' prototypes over the same points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_config
from ..engine.module import HierarchicalModule
from ..engine.runner import load_bundle
from ..errors import CheckpointError, ConfigError

__all__ = ["visualize", "pyplot"]

LEGEND_MAX = 20


def _embed(module, x: torch.Tensor, batch: int = 512) -> list[np.ndarray]:
    method = module.method
    outs: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            outs.append(method.embed(module.prepare_inputs(x[start : start + batch])))
    return [torch.cat([o[k] for o in outs]).numpy() for k in range(module.hierarchy.num_levels)]


def _prototypes(module) -> list[np.ndarray]:
    return [F.normalize(p.detach(), dim=1).numpy() for p in module.method.prototypes]


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend.

    Deferred (this and scikit-learn's t-SNE are the only imports inside functions here): only
    ``hcal visualize`` and a sweep's plot need matplotlib, and it would slow every other start-up.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(n: int):
    cmap = pyplot().get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "hsv")
    return [cmap(i % cmap.N if n <= 20 else i / max(1, n)) for i in range(n)]


def _tsne(points: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    from sklearn.manifold import TSNE  # deferred, as matplotlib (see pyplot)

    perplexity = min(perplexity, max(2.0, (points.shape[0] - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)


Prototypes = list[tuple[np.ndarray, int, np.ndarray, tuple[str, ...]]]  # (xy, level, classes, names) per level


def _plot(path: Path, xy: np.ndarray, colour_idx: np.ndarray, names: tuple[str, ...], protos: Prototypes,
          title: str) -> None:
    plt = pyplot()
    Line2D = plt.Line2D
    colours = _colours(len(names))
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    ax.scatter(xy[:, 0], xy[:, 1], c=[colours[i] for i in colour_idx], s=6, alpha=0.45, linewidths=0)
    handles = []
    for pxy, level, classes, pnames in protos:
        pcol = _colours(len(pnames))
        marker, size = ("*", 260) if level == 0 else ("o", 90 + 40 * level)
        ax.scatter(pxy[:, 0], pxy[:, 1], c=[pcol[c] for c in classes], marker=marker, s=size,
                   edgecolors="black", linewidths=1.0, zorder=3)
        if len(pnames) <= LEGEND_MAX:  # name the prototypes: colours repeat across levels
            for (px, py), c in zip(pxy, classes):
                ax.annotate(pnames[c], (px, py), xytext=(5, 5), textcoords="offset points", fontsize=6, zorder=4)
        handles.append(Line2D([], [], marker=marker, color="w", markerfacecolor="grey", markeredgecolor="black",
                              markersize=12 if level == 0 else 8, label=f"level-{level + 1} prototypes"))
    if len(names) <= LEGEND_MAX:
        handles += [Line2D([], [], marker="o", color="w", markerfacecolor=colours[i], markersize=6, label=n)
                    for i, n in enumerate(names)]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _maps(module, x, y, out: Path, state: str, seed: int, perplexity: float) -> list[Path]:
    h = module.hierarchy
    feats = _embed(module, x)
    protos = _prototypes(module)
    written: list[Path] = []
    shared = module.method.mtl if hasattr(module.method, "mtl") else True
    for k in range(h.num_levels):
        # per level: that level's embedding space (one shared space when MTL is on) and prototypes
        points = np.concatenate([feats[k], protos[k]])
        xy = _tsne(points, seed, perplexity)
        n = feats[k].shape[0]
        path = out / f"tsne_{state}_l{k + 1}.png"
        _plot(path, xy[:n], y[:, k].numpy(), h.classes[k], [(xy[n:], k, np.arange(h.sizes[k]), h.classes[k])],
              f"{state}: test embeddings and level-{k + 1} prototypes, coloured by level-{k + 1} class")
        written.append(path)
    if shared:
        points = np.concatenate([feats[0], *protos])
        xy = _tsne(points, seed, perplexity)
        n, offset, groups = feats[0].shape[0], feats[0].shape[0], []
        for k, p in enumerate(protos):
            groups.append((xy[offset : offset + len(p)], k, np.arange(len(p)), h.classes[k]))
            offset += len(p)
        path = out / f"tsne_{state}_all.png"
        _plot(path, xy[:n], y[:, 0].numpy(), h.classes[0], groups,
              f"{state}: test embeddings (coloured by level-1 class) and every level's prototypes")
        written.append(path)
    return written


def visualize(
    ckpt: str | Path,
    *,
    init_ckpt: str | Path | None = None,
    out: str | Path | None = None,
    samples: int = 2000,
    perplexity: float = 30.0,
    seed: int = 0,
    data_dir: str | None = None,
    echo: Callable[[str], None] = print,
) -> list[Path]:
    if samples < 10:
        raise ConfigError(f"--samples: expected an integer >= 10, got {samples}")
    if init_ckpt is not None and not Path(init_ckpt).is_file():  # given, so wanted: never skipped with a note
        what = "is a folder, not a .ckpt file" if Path(init_ckpt).is_dir() else "does not exist"
        raise CheckpointError(f"--init-ckpt {str(init_ckpt)!r} {what} (default: init.ckpt beside --ckpt)")
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    if not hasattr(module.method, "prototypes") or not hasattr(module.method, "embed"):
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} is a {module.config.method!r} model without prototypes; "
            "hcal visualize maps prototype methods (hcal)"
        )
    ckpt = Path(ckpt)
    init_path = Path(init_ckpt) if init_ckpt else ckpt.parent / "init.ckpt"
    out = Path(out) if out else ckpt.parent.parent / "figures"
    out.mkdir(parents=True, exist_ok=True)
    cfg = module.config.replace(**({"data_dir": data_dir} if data_dir else {}))
    check_config(cfg)
    bundle = load_bundle(cfg)
    test = bundle.test
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test), generator=g)[: min(samples, len(test))].tolist()
    pairs = [test[i] for i in idx]
    x = torch.stack([p[0] for p in pairs])
    y = torch.stack([p[1] for p in pairs])
    echo(f"hcal visualize: t-SNE of {len(idx)} test samples of {cfg.dataset} and {sum(module.hierarchy.sizes)} "
         "prototypes")
    written = _maps(module, x, y, out, "trained", seed, perplexity)
    if init_path.is_file():
        init_module, _ = HierarchicalModule.from_checkpoint(init_path)
        if init_module.hierarchy != module.hierarchy:
            raise CheckpointError(f"{init_path} belongs to another hierarchy than {ckpt}")
        written = _maps(init_module, x, y, out, "init", seed, perplexity) + written
    else:
        echo(f"note: no {init_path}; only the trained state is drawn (pass --init-ckpt for the initial one)")
    for p in written:
        echo(f"wrote {p}")
    return written
