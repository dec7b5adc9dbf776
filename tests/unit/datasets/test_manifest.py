"""datasets/manifest.py: CSV manifests."""

import json

from hcal.datasets import create_dataset
from tests.fixtures import (
    NESTED_PATHS,
    write_image,
)


# --------------------------------------------------------------------------------------------- csv
def _manifest(tmp_path, rows, header="path,group,animal,split"):
    (tmp_path / "m").mkdir(exist_ok=True)
    m = tmp_path / "m" / "labels.csv"
    m.write_text(header + "\n" + "\n".join(rows) + "\n")
    return m


def _csv_rows(tmp_path, n_per=4):
    rows = []
    for split in ("train", "test"):
        for k, (coarse, _, leaf) in enumerate(NESTED_PATHS):
            for i in range(n_per):
                name = f"img/{split}-{leaf}-{i}.png"
                write_image(tmp_path / "m" / name, k * 10 + i)
                rows.append(f"{name},{coarse},{leaf},{split}")
    return rows


def test_csv_manifest_columns_anywhere_and_no_split(tmp_path):
    rows = [",".join([lvl, f"img/{i}.png", leaf]) for i, (lvl, _, leaf) in enumerate(NESTED_PATHS * 4)]
    for i in range(20):
        write_image(tmp_path / "m" / "img" / f"{i}.png", i)
    m = _manifest(tmp_path, rows, header="kingdom,path,species")
    b = create_dataset("csv", str(tmp_path / "m"), seed=0, size=16)  # the folder holding one .csv
    assert (len(b.train) + len(b.val), len(b.test)) == (16, 4)
    assert b.hierarchy.classes[1] == ("Animal", "Vehicle")
    # the stored order follows the manifest: sample i of the whole set has row i's labels
    x, y = b.train[0]
    assert x.shape == (3, 16, 16)
    assert b.hierarchy.decode(y.tolist())[0] in ("Animal", "Vehicle")
    assert m.is_file()


def test_csv_quoted_fields_and_hierarchy_file(tmp_path):
    rows = _csv_rows(tmp_path, n_per=2)
    rows = [r.replace(",cat,", ',"cat",') for r in rows]
    m = _manifest(tmp_path, rows)
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps({"paths": [["Animal", "cat"], ["Animal", "dog"], ["Animal", "fox"], ["Vehicle", "car"],
                                          ["Vehicle", "truck"], ["Vehicle", "bus"]]}))
    b = create_dataset("csv", str(m), size=16, hierarchy=str(tree))
    assert b.hierarchy.classes[0][-1] == "bus"  # the file's tree, including a leaf without images
