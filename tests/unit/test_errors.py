"""errors.py: an hcal error re-raised from a data-loader worker keeps its one-line message."""

import pytest
from torch._utils import ExceptionWrapper

from hcal.errors import ConfigError, DataError, HierarchyError, ImageReadError


def test_image_error_survives_a_worker_reraise():
    try:
        raise ImageReadError("image /d/x.png cannot be read (truncated); delete or replace the file")
    except ImageReadError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(ImageReadError) as info:
        wrapped.reraise()
    assert str(info.value) == "image /d/x.png cannot be read (truncated); delete or replace the file"
    assert isinstance(info.value, DataError)


@pytest.mark.parametrize("kind", [DataError, ConfigError, HierarchyError])
def test_every_hcal_error_keeps_its_own_line_from_a_worker_traceback(kind):
    wrapped = (f"Caught {kind.__name__} in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               f'  File "x.py", line 1\nhcal.errors.{kind.__name__}: img/3.jpg: not a readable image; remove it\n')
    assert str(kind(wrapped)) == "img/3.jpg: not a readable image; remove it"
    assert str(kind("plain: message")) == "plain: message"
