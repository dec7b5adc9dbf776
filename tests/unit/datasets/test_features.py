"""datasets/features.py: .npz files and their errors."""

import numpy as np
import pytest

from hcal.datasets import create_dataset
from hcal.errors import DataError


def test_features_npz_errors(tmp_path):
    f = tmp_path / "f.npz"
    np.savez(f, X=np.zeros((4, 3)))
    with pytest.raises(DataError, match="missing key 'paths'"):
        create_dataset("features", str(f))
    np.savez(f, X=np.zeros((4, 3)), paths=np.array([["A", "a"]] * 5))
    with pytest.raises(DataError, match="'X' has 4 rows but 'paths' has 5"):
        create_dataset("features", str(f))
    np.savez(f, X=np.zeros((4, 3)), paths=np.array([["A", "a"]] * 4), split=np.array(["train", "test", "dev", "test"]))
    with pytest.raises(DataError, match="'split' has value 'dev'"):
        create_dataset("features", str(f))
    np.savez(f, X=np.zeros((4, 3)), paths=np.array([["A", "a"]] * 4), split=np.array(["train"] * 4))
    with pytest.raises(DataError, match="the 'test' split has no samples"):
        create_dataset("features", str(f))
    f.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not an .npz archive") as info:
        create_dataset("features", str(f))
    assert "pickle" not in str(info.value)  # never suggest unpickling an unknown file
    f.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        create_dataset("features", str(f))
    with pytest.raises(DataError, match="needs --data-dir"):
        create_dataset("features", None)
