"""Your own images sorted in folders, in one of two layouts.

**(a) Nested folders are the hierarchy**, coarsest first (as for the paper's classroom data)::

    ROOT/train/Animal/Pet/cat/0001.jpg        # label path Animal > Pet > cat
    ROOT/train/Vehicle/Road/truck/0001.jpg
    ROOT/test/...                             # same nesting
    ROOT/val/...                              # optional

Every image sits the same number of folders deep (one per level, at least two levels).

**(b) Flat leaf folders** (torchvision ``ImageFolder`` style) plus a hierarchy file::

    ROOT/train/cat/0001.jpg    ROOT/test/truck/0001.jpg   ...
    --dataset-arg hierarchy=tree.json   (or tree.csv)

The file is JSON as :meth:`hcal.Hierarchy.from_json` reads it (``{"paths": [[coarse, ..., leaf],
...]}`` or ``{"parents": {child: parent}}``), or CSV with one row per leaf, finest first:
``cat,Pet,Animal`` (an optional header row starting with ``leaf`` is skipped). Leaf folders must
be leaves of that tree. With a hierarchy file, nested folders are accepted too and must match it.

``train`` and ``test`` are required; without ``val``, a seeded ``val_fraction`` of ``train`` is
held out. ``--data-dir`` may also be a ``.tar``/``.tar.gz`` archive of that layout (read once,
sequentially, without unpacking; its images are then held in memory). A single top folder above
the split folders (``ROOT/mydata/train/...``) is looked through. Hidden files and folders
(``.DS_Store``, ``__MACOSX``) and non-image files are ignored (counted in the log line).

Class order: the order of first appearance in sorted folder order (children of one parent are
adjacent), or the hierarchy file's order.

Options (``--dataset-arg KEY=VALUE``): ``hierarchy=FILE``; ``size=N`` model input side (default
224); ``in_memory=true|false`` (default: true when ``size <= 64``): decode every image once at
load into one uint8 tensor; ``channels=1|3`` (default 3); ``verify=true``: with files read per
item, decode every image once at load to find bad ones up front.

Unreadable images: with ``in_memory`` every image is decoded at load, so a corrupt file stops
the load with one message naming it (and how many others fail). Otherwise (large images, decoded
per item) hcal does not open every image at load, which would cost a full pass over the data:
the first unreadable image stops training with a message naming the file (``verify=true`` checks
them all first). Images are never skipped silently.

Training augmentation: in memory, a padded random crop (padding ``size/8``) and a horizontal flip;
from files, ``RandomResizedCrop(size)`` and a flip. Evaluation: resize the shorter side to
``size * 8/7`` (256 for 224; none for ``size <= 64``) and centre-crop ``size`` (the input spec's
geometry, which ``hcal predict`` reuses). Normalisation: ImageNet mean/std.
"""

from __future__ import annotations

from ._base import DATASETS, DataBundle
from ._image_folder import load_image_folder
from ._labels import read_hierarchy_file

__all__ = ["folder"]


@DATASETS.register(
    "folder",
    description="your images in folders: ROOT/{train,val,test}/<coarse>/.../<fine>/<image>, or leaf folders "
    "+ --dataset-arg hierarchy=FILE (.json/.csv); --data-dir ROOT or ROOT.tar.gz",
    options={"hierarchy": str, "size": int, "in_memory": bool, "channels": int, "verify": bool},
)
def folder(
    data_dir: str | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    hierarchy: str | None = None,
    size: int = 224,
    in_memory: bool | None = None,
    channels: int = 3,
    verify: bool = False,
) -> DataBundle:
    return load_image_folder(
        data_dir,
        name="folder",
        seed=seed,
        val_fraction=val_fraction,
        hierarchy=read_hierarchy_file(hierarchy) if hierarchy is not None else None,
        hierarchy_source=f"hierarchy file {hierarchy!r}" if hierarchy is not None else "",
        size=size,
        in_memory=in_memory,
        channels=channels,
        verify=verify,
    )
