"""experiments/paper.py: the bundled tables."""

from hcal.experiments.commands import DEFAULT_ABLATIONS
from hcal.experiments.paper import paper_rows


def test_bundled_paper_tables_are_the_published_numbers():
    cifar, note = paper_rows("cifar100", "compare")
    assert list(cifar) == [f"{m} (paper)" for m in ("MMoE", "DMT", "CAGrad", "IMTL", "Nash-MTL", "CMT", "HCAL")]
    assert cifar["HCAL (paper)"] == {"test/acc_l1": 74.80, "test/acc_l2": 84.58, "test/hvr": 5.82}
    assert "Jiang et al., CIKM 2025" in note
    aircraft, _ = paper_rows("fgvc-aircraft", "compare")  # 3 levels by default: variant, family, manufacturer
    assert len(aircraft) == 7 and aircraft["HCAL (paper)"]["test/acc_l3"] == 88.06
    ablation, _ = paper_rows("fgvc-aircraft", "ablation", {"levels": "2"})
    assert [label.removesuffix(" (paper)") for label in ablation] == DEFAULT_ABLATIONS  # same labels, same order
    assert ablation["HCAL (MTL+FA+PP+AWA) (paper)"] == {"test/acc_l1": 84.07, "test/acc_l2": 90.88, "test/hvr": 3.27}
    none, note = paper_rows("fgvc-aircraft", "ablation")  # the ablation was published for 2 levels only
    assert none == {} and "no ablation table for fgvc-aircraft with 3 levels" in note
