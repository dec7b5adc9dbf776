"""errors.py: an hcal error re-raised from a data-loader worker keeps its one-line message."""

import pytest

from hcal.errors import DataError, ImageReadError


def test_image_error_survives_a_worker_reraise():
    from torch._utils import ExceptionWrapper

    try:
        raise ImageReadError("image /d/x.png cannot be read (truncated); delete or replace the file")
    except ImageReadError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(ImageReadError) as info:
        wrapped.reraise()
    assert str(info.value) == "image /d/x.png cannot be read (truncated); delete or replace the file"
    assert isinstance(info.value, DataError)
