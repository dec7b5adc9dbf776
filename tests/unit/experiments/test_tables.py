"""experiments/tables.py: results tables in the paper's form."""

from hcal.experiments.tables import markdown_table


def test_markdown_table_bolds_the_best_of_each_column():
    rows = [
        {"label": "a", "test/acc_l1": 0.8, "test/acc_l2": 0.9, "test/hvr": 0.10, "test/full_path_acc": 0.7,
         "test/hf1": 0.8},
        {"label": "a", "test/acc_l1": 0.9, "test/acc_l2": 0.9, "test/hvr": 0.20, "test/full_path_acc": 0.7,
         "test/hf1": 0.8},
        {"label": "b", "test/acc_l1": 0.7, "test/acc_l2": 0.95, "test/hvr": 0.05, "test/full_path_acc": 0.6,
         "test/hf1": 0.9},
    ]
    lines = markdown_table(rows).splitlines()
    assert lines[2] == "| a | 2 | **85.00 ± 7.07** | 90.00 ± 0.00 | 15.00 ± 7.07 | **70.00 ± 0.00** | 80.00 ± 0.00 |"
    assert lines[3] == "| b | 1 | 70.00 ± 0.00 | **95.00 ± 0.00** | **5.00 ± 0.00** | 60.00 ± 0.00 | **90.00 ± 0.00** |"
