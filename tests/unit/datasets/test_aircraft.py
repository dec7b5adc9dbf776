"""datasets/aircraft.py: FGVC-Aircraft's levels, banner, splits and boxes."""

from PIL import Image

from hcal.datasets import create_dataset
from tests.fixtures import (
    AIRCRAFT_PATHS,
    AIRCRAFT_SIZE,
    make_aircraft,
)


# ------------------------------------------------------------------------------------ FGVC-Aircraft
def test_aircraft_three_levels_banner_and_splits(tmp_path):
    root = make_aircraft(tmp_path, per_split=2)
    b = create_dataset("fgvc-aircraft", str(root), seed=0, val_fraction=0.25)
    h = b.hierarchy
    assert h.sizes == (6, 4, 3)
    assert h.classes[2] == ("Boeing", "McDonnell Douglas", "Airbus")  # manufacturers.txt order
    assert h.classes[0][0] == "A321"  # variants.txt order (reversed in the fixture)
    assert h.decode(h.encode("F/A-18")) == ("McDonnell Douglas", "F/A-18", "F/A-18")
    assert (len(b.train), len(b.val), len(b.test)) == (18, 6, 12)  # trainval 24, a quarter held out
    # the banner is gone: 20 rows fewer, none of its red left
    j = int(b.test.indices[0])
    x = b.test.load(j)
    w, hgt = AIRCRAFT_SIZE
    assert x.shape == (3, hgt - 20, w)
    assert int(x[0].max()) < 40 and int(x[2].min()) > 200

    with Image.open(b.test.files[j]) as img:
        assert img.size == (w, hgt) and img.getpixel((5, hgt - 1))[0] > 200  # the file itself has it
    xe, y = b.test[0]
    assert xe.shape == (3, 224, 224) and b.input_spec.resize == 256 and b.default_backbone == "resnet18"
    assert h.decode(y.tolist()) == AIRCRAFT_PATHS[0]
    assert "manufacturer > family > variant, train split trainval" in b.source


def test_aircraft_two_levels_official_val_and_bbox(tmp_path):
    root = make_aircraft(tmp_path, per_split=2)
    b = create_dataset("fgvc-aircraft", str(root), levels=2, train_split="train", bbox=True, size=32)
    assert b.hierarchy.num_levels == 2 and b.hierarchy.classes[0] == ("Boeing 737", "Boeing 747", "F/A-18", "A320")
    assert (len(b.train), len(b.val), len(b.test)) == (12, 12, 12)
    x = b.train.load(int(b.train.indices[0]))
    assert x.shape == (3, 38, 26)  # box 5 3 30 40, 1-based inclusive
    assert b.train[0][0].shape == (3, 32, 32) and b.input_spec.resize == round(32 * 256 / 224)
    # a box reaching into the banner is clipped to the banner-free image
    data = root / "data"
    lines = (data / "images_box.txt").read_text().splitlines()
    first = lines[0].split()[0]
    (data / "images_box.txt").write_text("\n".join([f"{first} 1 1 48 64"] + lines[1:]) + "\n")
    b = create_dataset("fgvc-aircraft", str(root), levels=2, train_split="train", bbox=True, size=32)
    assert b.train.load(0).shape == (3, 44, 48)
