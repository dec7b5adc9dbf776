"""engine/predict_inputs.py: new inputs are read exactly as evaluation reads the test set; bad ones are recorded."""

import numpy as np
import pytest
import torch

from hcal.datasets import create_dataset, read_image_file
from hcal.datasets._images import image_spec
from hcal.engine.predict_inputs import array_inputs, expand_inputs, load_inputs, read_inputs
from hcal.errors import DataError
from hcal.inputs import InputSpec
from tests.fixtures import make_nested, write_image

VECTORS = InputSpec(kind="vector", dim=4)


@pytest.mark.parametrize("channels, size", [(3, 16), (1, 16), (3, 72), (1, 72)])  # in memory; read per item
def test_images_are_read_as_the_image_datasets_read_their_test_set(tmp_path, channels, size):
    root = make_nested(tmp_path / "data", per_class=2, size=(90, 70))
    (root / "test" / "notes.txt").write_text("not an image")
    bundle = create_dataset("folder", str(root), size=size, channels=channels)
    files = expand_inputs([str(root / "test")], "image")
    assert len(files) == len(bundle.test) == 10  # a folder: its images, sorted (as the dataset lists them)
    inputs = load_inputs(files, bundle.input_spec)
    assert inputs.names == [str(f) for f in files] and inputs.errors == [None] * 10
    assert inputs.x.shape == (10, channels, size, size) and inputs.x.dtype == torch.uint8
    for i in range(10):
        assert torch.equal(inputs.x[i], bundle.test[i][0]), i
    # the same images as one uint8 array in memory, at their own size (90x70), are brought to the same geometry
    pixels = torch.stack([read_image_file(f, channels) for f in files])
    assert torch.equal(array_inputs(pixels, bundle.input_spec).x, inputs.x)


def test_vectors_and_what_stops_at_once(tmp_path):
    np.save(tmp_path / "batch.npy", np.zeros((2, 4), "float32"))
    np.save(tmp_path / "one.npy", np.ones(4, "float32"))
    inputs = load_inputs([tmp_path / "batch.npy", tmp_path / "one.npy"], VECTORS)
    assert inputs.names == [f"{tmp_path / 'batch.npy'}:0", f"{tmp_path / 'batch.npy'}:1", str(tmp_path / "one.npy")]
    assert inputs.x.shape == (3, 4) and inputs.errors == [None] * 3
    inputs.check(skip_bad=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .npy files"):
        expand_inputs([str(tmp_path / "empty")], "vector")
    with pytest.raises(DataError, match="does not exist"):
        expand_inputs([str(tmp_path / "nope.npy")], "vector")
    with pytest.raises(DataError, match=r"x\.png.*4-d feature vectors; give \.npy files"):
        load_inputs([tmp_path / "x.png"], VECTORS)


def test_inputs_that_cannot_be_predicted_are_recorded(tmp_path):
    rows = np.arange(12, dtype="float32").reshape(3, 4)
    rows[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", rows)
    np.save(tmp_path / "none.npy", np.zeros((0, 4), "float32"))
    np.save(tmp_path / "wide.npy", np.zeros((2, 5), "float32"))
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    files = [tmp_path / n for n in ("nan.npy", "none.npy", "wide.npy", "broken.npy")]
    inputs = load_inputs(files, VECTORS)
    nan = str(tmp_path / "nan.npy")
    assert inputs.names == [f"{nan}:0", f"{nan}:1", f"{nan}:2", *map(str, files[1:])]
    errors = dict(zip(inputs.names, inputs.errors))
    assert errors[f"{nan}:0"] is None and errors[f"{nan}:2"] is None
    assert errors[f"{nan}:1"] == "holds a non-finite value (nan); features must be finite numbers"
    assert errors[str(files[1])] == "holds no rows (shape (0, 4))"
    assert "has shape (2, 5)" in errors[str(files[2])] and "(n, 4)" in errors[str(files[2])]
    assert "cannot be read as .npy" in errors[str(files[3])]
    assert torch.equal(inputs.x, torch.as_tensor(rows[[0, 2]]))  # the rows that can be predicted, in order
    with pytest.raises(DataError) as e:
        inputs.check(skip_bad=False)
    message = str(e.value)
    assert message.startswith(f"input '{nan}:1': holds a non-finite value (nan)") and "(4 inputs in all)" in message
    assert "--skip-bad" in message and "\n" not in message
    inputs.check(skip_bad=True)


def test_an_unreadable_image_is_recorded(tmp_path):
    good = write_image(tmp_path / "good.png", 0, size=(20, 20))
    (tmp_path / "bad.png").write_bytes(b"png?")
    inputs = load_inputs([good, tmp_path / "bad.png"], image_spec(16))
    assert inputs.errors[0] is None and "bad.png cannot be read" in inputs.errors[1]
    assert inputs.x.shape == (1, 3, 16, 16)


def test_arrays_and_tensors_in_memory():
    x = np.random.default_rng(0).normal(size=(5, 4))
    for given in (x, torch.as_tensor(x), x.tolist()):
        inputs = array_inputs(given, VECTORS)
        assert inputs.names == [0, 1, 2, 3, 4] and inputs.x.dtype == torch.float32
        torch.testing.assert_close(inputs.x, torch.as_tensor(x, dtype=torch.float32))
    assert read_inputs(x[0], VECTORS).x.shape == (1, 4)  # one vector
    x[3, 0] = np.inf
    assert array_inputs(x, VECTORS).errors == [None, None, None, "holds a non-finite value (inf); features must be "
                                               "finite numbers", None]
    with pytest.raises(DataError, match=r"shape \(5, 3\).*4-d feature vectors.*\(n, 4\)"):
        array_inputs(x[:, :3], VECTORS)
    with pytest.raises(DataError, match="no rows"):
        array_inputs(np.zeros((0, 4)), VECTORS)
    with pytest.raises(DataError, match="dtype <U1"):
        array_inputs(np.array([["a"] * 4]), VECTORS)
    grey = array_inputs(torch.rand(2, 1, 20, 24), image_spec(16, channels=1))
    assert grey.x.shape == (2, 1, 16, 16) and grey.x.dtype == torch.float32
    with pytest.raises(DataError, match=r"\(n, 3, H, W\)"):
        array_inputs(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), image_spec(16))
