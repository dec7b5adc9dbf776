"""datasets/cifar10.py: the B-CNN hierarchy."""

from hcal.datasets.cifar10 import CIFAR10_PATHS, cifar10_hierarchy


# ----------------------------------------------------------------------------------- cifar10 preset
def test_cifar10_hierarchy_is_bcnn():
    h = cifar10_hierarchy()
    assert h.classes[2] == ("transport", "animal")
    assert h.classes[1] == ("sky", "water", "road", "bird", "reptile", "pet", "medium")
    assert h.classes[0] == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert h.decode(h.encode("frog")) == ("animal", "reptile", "frog")
    assert h.decode(h.encode("truck")) == ("transport", "road", "truck")
    assert h.decode(h.encode("bird")) == ("animal", "bird", "bird")  # 'bird' on two levels
    assert len(CIFAR10_PATHS) == 10
