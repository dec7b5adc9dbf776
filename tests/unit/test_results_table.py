"""benchmarks/results_table.py's convergence column, on hand-written per-epoch logs."""

import json
from pathlib import Path

import pytest

from tests.helpers import ROOT, load_benchmark


@pytest.fixture(scope="module")
def results_table():
    return load_benchmark("results_table")


def _log(path: Path, epochs: dict[int, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,step,train/loss_step,val/full_path_acc"]
    for e, v in epochs.items():
        lines += [f"{e},{10 * e + 5},0.5,", f"{e},{10 * e + 9},,{v}"]  # a training row, then the validation row
    path.write_text("\n".join(lines) + "\n")


def test_trend_is_last_quarter_minus_the_quarter_before_in_points(results_table, tmp_path):
    run = tmp_path / "ew-seed0"
    _log(run / "logs" / "csv" / "version_0" / "metrics.csv", {e: 0.1 * (e + 1) for e in range(8)})
    # k = 8 // 4 = 2: mean(0.7, 0.8) - mean(0.5, 0.6) = 0.2 -> +20 points
    assert results_table.val_trend(run) == pytest.approx(20.0)


def test_resumed_logs_override_earlier_epochs_and_short_runs_have_no_trend(results_table, tmp_path):
    run = tmp_path / "copied"
    _log(run / "metrics-epochs-1.csv", {0: 0.5, 1: 0.9, 2: 0.9})
    _log(run / "metrics-epochs-2.csv", {1: 0.6, 2: 0.6, 3: 0.6, 4: 0.62})  # after a resume from epoch 1
    # epochs 0-4 = 0.5, 0.6, 0.6, 0.6, 0.62; k = 1: 0.62 - 0.6
    assert results_table.val_trend(run) == pytest.approx(2.0)
    single = tmp_path / "one-epoch"
    _log(single / "metrics-epochs-1.csv", {0: 0.5})
    assert results_table.val_trend(single) is None


def test_kept_logs_are_read_in_the_order_of_their_number_not_as_text(results_table, tmp_path):
    run = tmp_path / "resumed-ten-times"
    _log(run / "metrics-epochs-2.csv", {0: 0.5, 1: 0.5, 2: 0.9})
    _log(run / "metrics-epochs-10.csv", {2: 0.6})  # the later session: its epoch 2 wins
    # epochs 0-2 = 0.5, 0.5, 0.6; k = 1: 0.6 - 0.5 (read as text, -10 before -2: 0.9 - 0.5)
    assert results_table.val_trend(run) == pytest.approx(10.0)


def test_table_prints_the_mean_trend_of_each_row(results_table, tmp_path):
    for seed, slope in ((0, 0.01), (1, 0.03)):
        run = tmp_path / "grid" / "runs" / f"ew-seed{seed}"
        _log(run / "metrics-epochs-1.csv", {e: 0.5 + slope * e for e in range(4)})  # k = 1: +1 and +3 points
        metrics = {k: 0.5 for k in results_table.KEYS}
        (run / "metrics.json").write_text(json.dumps(metrics))
        (run / "config.yaml").write_text("decode: nearest\n")
    text = results_table.table(results_table.collect([tmp_path / "grid"], [], set()))
    assert text.splitlines()[0].endswith("| train s | val Δ |")
    assert text.splitlines()[2].endswith("| – | +2.00 |")  # no run.json: no seconds; mean of +1 and +3


def _grid(results_table, root: Path, full_path: float) -> None:
    run = root / "grid" / "runs" / "ew-seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({k: full_path for k in results_table.KEYS}))
    (run / "config.yaml").write_text("decode: nearest\n")


def test_docs_check_finds_a_stale_marked_table_and_write_refreshes_only_it(results_table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _grid(results_table, tmp_path, 0.5)
    unmarked = "| a | b |\n|---|---|\n| 1 | 2 |"
    page = tmp_path / "page.md"
    page.write_text(f"# title\n\n<!-- results_table: grid -->\n| old |\n|---|\n\ntext\n\n{unmarked}\n")
    assert results_table.main(["--docs", "page.md"]) == 1
    assert results_table.main(["--docs", "page.md", "--write"]) == 0
    text = page.read_text()
    assert "| old |" not in text and unmarked in text and text.startswith("# title\n")
    assert "| ew | nearest | 1 | 50.00 ± 0.00 |" in text  # 0.5 in %, one seed
    assert results_table.main(["--docs", "page.md"]) == 0
    (tmp_path / "grid" / "runs" / "ew-seed0" / "metrics.json").write_text(
        json.dumps({k: 0.25 for k in results_table.KEYS}))  # a record changes: the page is stale again
    assert results_table.main(["--docs", "page.md"]) == 1


def test_every_marked_table_of_the_results_page_matches_the_committed_records(results_table, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    page = ROOT / "docs" / "results.md"
    assert page.read_text().count("<!-- results_table: ") >= 6
    assert results_table.main(["--docs", "docs/results.md"]) == 0, capsys.readouterr().out


def test_a_folder_without_runs_is_refused_in_one_line(results_table, tmp_path):
    with pytest.raises(SystemExit) as info:
        results_table.main([str(tmp_path / "nope")])
    message = str(info.value)
    assert "nope" in message and "no runs/ folder" in message and "\n" not in message
