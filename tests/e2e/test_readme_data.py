"""The README's own-image examples (folder layouts, CSV manifest): each layout is built exactly as
shown and the command shown is run on it.

The README's commands train for 30 epochs at 224 px with ResNet-18; here the same command line
gets budget flags appended (later flags win): one epoch, one batch, 32 px, the small CNN."""

import csv
import io
import itertools
import json
import re
import shlex

from tests.e2e.test_readme import _blocks_after
from tests.fixtures import write_image

BUDGET = ["--epochs", "1", "--limit-batches", "1", "--batch-size", "8", "--dataset-arg", "size=32",
          "--backbone", "small-cnn", "--no-progress"]


IMAGES_PER_FOLDER = 4


def _expand_braces(pattern: str) -> list[str]:
    """``a/{b,c}/d`` -> ``['a/b/d', 'a/c/d']`` (shell brace expansion, no nesting)."""
    parts = re.split(r"\{([^{}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _build_layout(text: str, base) -> list[str]:
    """Create ``IMAGES_PER_FOLDER`` images in every folder the layout block lists."""
    folders = []
    for line in text.strip().splitlines():
        pattern = line.split()[0]
        assert pattern.endswith("/*.jpg"), line
        folders += [p[: -len("/*.jpg")] for p in _expand_braces(pattern)]
    for k, folder in enumerate(folders):
        for i in range(IMAGES_PER_FOLDER):
            write_image(base / folder / f"{i:04d}.jpg", 10 * k + i, size=(40, 30))
    return folders


def _run(cli, command: str):
    args = shlex.split(command.strip())
    assert args[0] == ".venv/bin/hcal"
    r = cli(*args[1:], *BUDGET)
    assert r.code == 0, r
    return args


def test_folder_nested_example(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks_after("folder-nested")
    assert [lang for lang, _ in blocks] == ["text", "bash"]
    folders = _build_layout(blocks[0][1], tmp_path)
    assert "photos/train/Animal/Pet/cat" in folders and "photos/test/Vehicle/Road/truck" in folders
    args = _run(cli, blocks[1][1])
    run = tmp_path / args[args.index("--run-dir") + 1]
    tree = json.loads((run / "hierarchy.json").read_text())
    assert tree["levels"] == [["Animal", "Vehicle"], ["Pet", "Wild", "Road"], ["cat", "dog", "fox", "car", "truck"]]
    assert (run / "metrics.json").is_file()


def test_folder_flat_example(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks_after("folder-flat")
    assert [lang for lang, _ in blocks] == ["text", "csv", "bash"]
    _build_layout(blocks[0][1], tmp_path)
    args = shlex.split(blocks[2][1])
    tree_file = next(a.split("=", 1)[1] for a in args if a.startswith("hierarchy="))
    (tmp_path / tree_file).write_text(blocks[1][1])
    _run(cli, blocks[2][1])
    run = tmp_path / args[args.index("--run-dir") + 1]
    tree = json.loads((run / "hierarchy.json").read_text())
    assert ["Animal", "Pet", "cat"] in tree["paths"] and ["Vehicle", "Road", "truck"] in tree["paths"]


def test_csv_example(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks_after("csv")
    assert [lang for lang, _ in blocks] == ["csv", "bash"]
    args = shlex.split(blocks[1][1])
    manifest = tmp_path / args[args.index("--data-dir") + 1]
    manifest.parent.mkdir(parents=True)
    rows = list(csv.reader(io.StringIO(blocks[0][1])))
    header, shown = rows[0], rows[1:]
    assert header == ["path", "group", "animal", "split"]
    # the README's rows, then more rows like them so that every split can be trained and evaluated
    extra = [[f"img/{100 + i:04d}.jpg", *shown[i % len(shown)][1:]] for i in range(4 * len(shown))]
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *shown, *extra])
    for k, row in enumerate(shown + extra):
        write_image(manifest.parent / row[0], k, size=(40, 30))
    _run(cli, blocks[1][1])
    run = tmp_path / args[args.index("--run-dir") + 1]
    tree = json.loads((run / "hierarchy.json").read_text())
    assert tree["levels"] == [["Animal", "Vehicle"], ["cat", "dog", "truck", "car"]]
