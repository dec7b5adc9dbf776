"""engine/predict_inputs.py: new inputs are read exactly as evaluation reads the test set."""

import numpy as np
import pytest
import torch

from hcal.datasets import create_dataset
from hcal.datasets._images import image_spec
from hcal.engine.predict_inputs import expand_inputs, load_inputs
from hcal.errors import DataError, ImageReadError
from hcal.inputs import InputSpec
from tests.fixtures import make_nested


@pytest.mark.parametrize("channels, size", [(3, 16), (1, 16), (3, 72), (1, 72)])  # in memory; read per item
def test_images_are_read_as_the_image_datasets_read_their_test_set(tmp_path, channels, size):
    root = make_nested(tmp_path / "data", per_class=2, size=(90, 70))
    (root / "test" / "notes.txt").write_text("not an image")
    bundle = create_dataset("folder", str(root), size=size, channels=channels)
    files = expand_inputs([str(root / "test")], "image")
    assert len(files) == len(bundle.test) == 10  # a folder: its images, sorted (as the dataset lists them)
    names, x = load_inputs(files, bundle.input_spec)
    assert names == [str(f) for f in files] and x.shape == (10, channels, size, size) and x.dtype == torch.uint8
    for i in range(10):
        assert torch.equal(x[i], bundle.test[i][0]), i


def test_vectors_and_errors(tmp_path):
    spec = InputSpec(kind="vector", dim=4)
    np.save(tmp_path / "batch.npy", np.zeros((2, 4), "float32"))
    np.save(tmp_path / "one.npy", np.ones(4, "float32"))
    names, x = load_inputs([tmp_path / "batch.npy", tmp_path / "one.npy"], spec)
    assert names == [f"{tmp_path / 'batch.npy'}:0", f"{tmp_path / 'batch.npy'}:1", str(tmp_path / "one.npy")]
    assert x.shape == (3, 4)
    with pytest.raises(DataError, match="holds no .npy files"):
        expand_inputs([str(tmp_path / "empty")] if (tmp_path / "empty").mkdir() is None else [], "vector")
    with pytest.raises(DataError, match="does not exist"):
        expand_inputs([str(tmp_path / "nope.npy")], "vector")
    (tmp_path / "bad.png").write_bytes(b"png?")
    with pytest.raises(ImageReadError, match="bad.png cannot be read"):
        load_inputs([tmp_path / "bad.png"], image_spec(16))
