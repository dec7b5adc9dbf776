"""``hcal visualize``: t-SNE maps of test embeddings with each level's prototypes (paper Fig. 6-7).

A t-SNE (scikit-learn) embeds the sampled test embeddings together with the (normalised)
prototypes, so prototypes land among the samples they attract. Per state (at initialisation,
from ``checkpoints/init.ckpt``, and after training) it writes one PNG per level, points coloured
by that level's true class, and, when the levels share one embedding space (MTL), one PNG with
every level's prototypes over the same points; the maps of a shared space come from one t-SNE, so
they show the same layout. Each level's prototypes have their own marker (level 1 a star, then a
diamond, a square, ...); on the all-level map the coarse levels' prototypes are drawn in greys,
apart from the points' colours, and every prototype is named.
"""

from __future__ import annotations

import itertools
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_config
from ..engine.module import HierarchicalModule
from ..engine.report import format_duration
from ..engine.runner import load_bundle
from ..errors import CheckpointError, ConfigError
from ..plots import pyplot

__all__ = ["visualize", "MARKERS"]

LEGEND_MAX = 20
MARKERS = ("*", "D", "s", "^", "P", "X", "v", "h")  # level 1 (finest), level 2, ...
SIZES = (320, 130, 130, 140, 150, 150, 140, 150)


def _embed(module, x: torch.Tensor, batch: int = 512) -> list[np.ndarray]:
    method = module.method
    outs: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            outs.append(method.embed(module.prepare_inputs(x[start : start + batch])))
    return [torch.cat([o[k] for o in outs]).numpy() for k in range(module.hierarchy.num_levels)]


def _prototypes(module) -> list[np.ndarray]:
    return [F.normalize(p.detach(), dim=1).numpy() for p in module.method.prototypes]


def _colours(n: int):
    cmap = pyplot().get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "hsv")
    return [cmap(i % cmap.N if n <= 20 else i / max(1, n)) for i in range(n)]


def _greys(n: int):
    """The coarse prototypes' palette: greys from near-black to light, neighbours far apart."""
    shades = np.linspace(0.1, 0.75, n) if n > 1 else np.array([0.2])
    order = np.r_[0:n:2, 1:n:2]  # alternate dark and light
    return [(s, s, s, 1.0) for s in shades[order]]


def _tsne(points: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    from sklearn.manifold import TSNE  # deferred (this and pyplot): only hcal visualize needs them

    perplexity = min(perplexity, max(2.0, (points.shape[0] - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)


Prototypes = list[tuple[np.ndarray, int, tuple[str, ...]]]  # (xy, level, class names) per level

OFFSETS = ((7, 7), (7, -13), (-7, 7), (-7, -13), (0, 12), (0, -17), (12, -3), (-12, -3))  # label positions, pt


def _box(ax, xy, size_pt: float):
    """The display-space square a marker of ``size_pt`` points across covers at ``xy``."""
    from matplotlib.transforms import Bbox

    (x, y), half = ax.transData.transform(xy), size_pt * ax.figure.dpi / 144
    return Bbox([[x - half, y - half], [x + half, y + half]])


def _label(ax, renderer, taken: list, xy, text: str, own) -> None:
    """Name a prototype where the label covers no label or prototype marker placed before: at the first of
    :data:`OFFSETS`, then of the same directions further out with a leader line."""
    import matplotlib.patheffects as pe
    from matplotlib.text import Text

    candidates = [(dx * r, dy * r, r) for r in (1, 2, 3, 4, 5, 6.5, 8) for dx, dy in OFFSETS]
    frame = ax.get_window_extent(renderer)
    for dx, dy, r in candidates:
        t = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=8, fontweight="bold",
                        ha="left" if dx > 0 else "right" if dx < 0 else "center", va="center", zorder=5,
                        path_effects=[pe.withStroke(linewidth=2.5, foreground="white")],
                        arrowprops={"arrowstyle": "-", "color": "0.35", "linewidth": 0.7} if r > 1 else None)
        t.update_positions(renderer)
        box = Text.get_window_extent(t, renderer)  # the text alone, not its leader line
        inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        if inside and not any(box.overlaps(b) for b in taken if b is not own) or (dx, dy, r) == candidates[-1]:
            taken.append(box)
            return
        t.remove()


def _plot(path: Path, xy: np.ndarray, colour_idx: np.ndarray, names: tuple[str, ...], protos: Prototypes,
          title: str) -> None:
    plt = pyplot()
    Line2D = plt.Line2D
    colours = _colours(len(names))
    fig, ax = plt.subplots(figsize=(8.5, 6.5), dpi=150)
    ax.scatter(xy[:, 0], xy[:, 1], c=[colours[i] for i in colour_idx], s=10, alpha=0.6, linewidths=0)
    handles, labels = [], []
    for pxy, level, pnames in protos:
        # prototypes of the points' level share their colours; the coarse ones of an all-level map, greys
        pcol = colours if pnames == names else _greys(len(pnames))
        marker, size = MARKERS[level % len(MARKERS)], SIZES[level % len(SIZES)]
        ax.scatter(pxy[:, 0], pxy[:, 1], c=pcol[: len(pnames)], marker=marker, s=size, edgecolors="black",
                   linewidths=1.2, zorder=4 - 0.1 * level)  # finer on top: the coarse markers show around
        if len(pnames) <= LEGEND_MAX:
            labels += [(point, name, size) for point, name in zip(pxy, pnames)]
        handles.append(Line2D([], [], marker=marker, color="w", markerfacecolor="0.55", markeredgecolor="black",
                              markersize=13 if level == 0 else 9, label=f"level-{level + 1} prototypes"))
    if len(names) <= LEGEND_MAX:
        handles += [Line2D([], [], marker="o", color="w", markerfacecolor=colours[i], markersize=7, label=n)
                    for i, n in enumerate(names)]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("\n".join(textwrap.fill(line, 110) for line in title.split("\n")), fontsize=10)  # long paths
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()  # labels last, once the axes have their final place
    markers = [_box(ax, point, size ** 0.5) for point, _, size in labels]
    taken = list(markers)
    for (point, name, _), own in zip(labels, markers):
        _label(ax, renderer, taken, point, name, own)
    fig.savefig(path)
    plt.close(fig)


def _maps(module, x, y, out: Path, state: str, heading: str, seed: int, perplexity: float,
          tell: Callable[[str], None]) -> list[Path]:
    """The maps of one state; ``tell`` announces each t-SNE, the slow part."""
    h = module.hierarchy
    feats, protos = _embed(module, x), _prototypes(module)
    n = x.shape[0]
    maps = []  # (file, points, level the points are coloured by, prototype groups, what the map shows)
    if getattr(module.method, "mtl", True):  # one embedding space: one t-SNE, the same layout on every map
        tell(f"{state}: t-SNE of {n} test embeddings and every level's {sum(h.sizes)} prototypes")
        xy = _tsne(np.concatenate([feats[0], *protos]), seed, perplexity)
        bounds = np.cumsum([n, *h.sizes])
        groups = [(xy[bounds[k] : bounds[k + 1]], k, h.classes[k]) for k in range(h.num_levels)]
        maps.append((out / f"tsne_{state}_all.png", xy[:n], 0, groups,
                     "points coloured by level-1 class; every level's prototypes"))
        maps += [(out / f"tsne_{state}_l{k + 1}.png", xy[:n], k, [groups[k]], None) for k in range(h.num_levels)]
    else:  # an embedding space per level
        for k in range(h.num_levels):
            tell(f"{state}, level {k + 1}: t-SNE of {n} test embeddings and {h.sizes[k]} prototypes")
            both = _tsne(np.concatenate([feats[k], protos[k]]), seed, perplexity)
            maps.append((out / f"tsne_{state}_l{k + 1}.png", both[:n], k, [(both[n:], k, h.classes[k])], None))
    for path, points, k, groups, what in maps:
        what = what or f"points and prototypes of level {k + 1}{' (finest)' if k == 0 else ''}, coloured by class"
        _plot(path, points, y[:, k].numpy(), h.classes[k], groups, f"{heading}\n{what}")
    return [m[0] for m in maps]


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
    module, saved = HierarchicalModule.from_checkpoint(ckpt)
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
    h = module.hierarchy
    states = [("trained", module, f"checkpoint {ckpt} (epoch {int(saved['epoch']) + 1})")]
    if init_path.is_file():
        init_module, _ = HierarchicalModule.from_checkpoint(init_path)
        if init_module.hierarchy != h:
            raise CheckpointError(f"{init_path} belongs to another hierarchy than {ckpt}")
        states.insert(0, ("init", init_module, f"checkpoint {init_path}"))
    else:
        echo(f"note: no {init_path}; only the trained state is drawn (pass --init-ckpt for the initial one)")
    runs = len(states) * (1 if getattr(module.method, "mtl", True) else h.num_levels)
    echo(f"hcal visualize: {len(idx)} test samples of {cfg.dataset} and {sum(h.sizes)} prototypes, "
         f"{len(states)} state(s), {runs} t-SNE run(s), maps into {out}")
    count, start = itertools.count(1), time.perf_counter()

    def tell(what: str) -> None:
        echo(f"[{next(count)}/{runs}] {what} ({format_duration(time.perf_counter() - start)} so far)")

    written: list[Path] = []
    for state, m, source in states:
        written += _maps(m, x, y, out, state, f"t-SNE of {cfg.dataset} test embeddings, method {cfg.method}, "
                         f"{'at initialisation' if state == 'init' else 'trained'}: {source}", seed, perplexity, tell)
    for path in written:
        echo(f"wrote {path}")
    return written
