"""Datasets as uint8 tensors that live on the training device.

    info = describe("cifar100")                       # shapes, mean/std, labels: cheap, no load
    train = load("cifar100", "train", device="cuda")  # ImageSet: images uint8 [N,C,H,W], labels int64 [N]
    train, val = train_val_split(train, n_val=10_000, seed=0)

Names (`describe` and `load` take the same ones):
    cifar100             the canonical python pickles, <root>/cifar-100-python/{train,test,meta}, read by
                         torchvision.datasets.CIFAR100, which checks each file's md5 before unpickling it.
    cifar10              the same for <root>/cifar-10-batches-py.
    imagefolder:<path>   an ImageFolder tree (<class>/<image>, optionally under train/ val/ test/) or a .tar.gz
                         of one. Relative paths resolve against the data root.
    cifar10-jpeg         alias of imagefolder:cifar10-jpeg.tar.gz, the offline natural-image stand-in.
    addnist              report E's dataset, regenerated from MNIST by its published recipe (see make_addnist).

Where things are: the data root is the `root` argument, else by the Makefile's rule: $CIFAR_NB_DATA, else
../shared/data beside the project (the folder that holds this package), else ./data in the working directory
(see `locate_data_root`). Work that is slow to redo (50k
decoded JPEGs, the generated AddNIST) is cached under $CIFAR_NB_CACHE, else
$XDG_CACHE_HOME/cifar_nb, else ~/.cache/cifar_nb (never in the data root). Cache entries are named by a fingerprint of
their source, written to a temporary name and renamed into place, so a stale or half-written entry is never
read. Downloads happen only when asked for (download=True or CIFAR_NB_DOWNLOAD=1).
"""
from __future__ import annotations

import os
import tarfile
import zlib

import numpy as np
import torch
from torchvision.datasets.utils import check_integrity

from cifar_nb.engine.data.addnist import MNIST_FILES, _load_addnist, _mnist_check, make_addnist  # noqa: F401
from cifar_nb.engine.data.cifar import _cifar_class, _cifar_files, _cifar_help, _load_cifar
from cifar_nb.engine.data.core import (  # noqa: F401
    ADDNIST_SEED,
    ADDNIST_SIZES,
    ALIASES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_CLASSES,
    CIFAR100_MEAN,
    CIFAR100_STD,
    DATA_ROOT_RULES,
    MNIST_MEAN,
    MNIST_STD,
    NAMES,
    DataError,
    DatasetInfo,
    ImageSet,
    _check_split,
    _md5,
    cache_dir,
    data_root,
    known_info,
    locate_data_root,
)
from cifar_nb.engine.data.imagefolder import _imagefolder

# The layout: core (types, data root, cache), cifar, imagefolder, addnist (one loader each); this module names
# the datasets (describe, load), splits them, and checks what the data root holds.


# ---------------------------------------------------------------------------------------------
# names

def _parse(dataset: str) -> tuple[str, str | None]:
    if dataset in ("cifar100", "cifar10", "addnist"):
        return dataset, None
    if dataset in ALIASES:
        return "imagefolder", ALIASES[dataset]
    if isinstance(dataset, str) and dataset.startswith("imagefolder:") and dataset[len("imagefolder:"):]:
        return "imagefolder", dataset[len("imagefolder:"):]
    raise DataError(f"unknown dataset {dataset!r}; valid names: {NAMES}")


def describe(dataset: str = "cifar100", root=None) -> DatasetInfo:
    """Shapes, normalisation and labels of a dataset, without loading it (a generic imagefolder is scanned,
    and its train split decoded once to compute mean/std)."""
    kind, arg = _parse(dataset)
    return known_info(dataset) or _imagefolder(dataset, arg, "train", root)[1]


def load(dataset: str = "cifar100", split: str = "train", root=None, device="cpu", download=None) -> ImageSet:
    """The whole split as tensors on `device`. `download` (default: $CIFAR_NB_DOWNLOAD == "1") only
    matters for cifar100/cifar10."""
    kind, arg = _parse(dataset)
    if download is None:
        download = os.environ.get("CIFAR_NB_DOWNLOAD") == "1"
    if kind in ("cifar100", "cifar10"):
        _check_split(dataset, split, ("train", "test"))
        s = _load_cifar(kind, split, root, download)
    elif kind == "addnist":
        _check_split(dataset, split, tuple(ADDNIST_SIZES))
        s = _load_addnist(split, root)
    else:
        if dataset in ALIASES:   # before reading the archive
            _check_split(dataset, split, describe(dataset).splits)
        s = _imagefolder(dataset, arg, split, root)[0]
    return s.to(device)


def train_val_split(imageset: ImageSet, n_val: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """A seeded random split into (train, val), each in the original order (report D: n_val=10_000)."""
    n = len(imageset)
    if not isinstance(n_val, int) or not 0 < n_val < n:
        raise DataError(f"n_val must be an integer between 1 and {n - 1} (the set has {n} images), got {n_val!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return imageset.subset(perm[n_val:].sort().values), imageset.subset(perm[:n_val].sort().values)


# ---------------------------------------------------------------------------------------------
# python -m cifar_nb data check

def cifar_files_present(kind: str, root=None) -> bool:
    """Whether CIFAR-100 / CIFAR-10's python pickles are under the data root, by their files alone (cheap: the md5
    check runs when they are loaded)."""
    try:
        r = data_root(root)
    except DataError:
        return False
    cls = _cifar_class(kind)
    return all((r / cls.base_folder / n).is_file() for n, _ in _cifar_files(cls))


def cifar100_sample(root=None) -> dict:
    """The data root's cifar100-sample.npz: real CIFAR-100 labels for all 60,000 images and the first 486 train
    and 916 test images, for showing real images and for tests. Far too small to train or score on."""
    path = data_root(root) / "cifar100-sample.npz"
    if not path.is_file():
        raise DataError(f"no {path.name} in {path.parent}: it holds the real CIFAR-100 images the book shows")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def check(root=None) -> list[dict]:
    """One row per dataset: {dataset, status: present|missing|corrupt, detail: where it looked, what to do}."""
    root = data_root(root)
    rows = []
    for kind in ("cifar100", "cifar10"):
        cls = _cifar_class(kind)
        folder = root / cls.base_folder
        missing = [n for n, _ in _cifar_files(cls) if not (folder / n).is_file()]
        bad = [] if missing else [n for n, md5 in _cifar_files(cls) if not check_integrity(str(folder / n), md5)]
        if missing:
            rows.append(dict(dataset=kind, status="missing",
                             detail=f"no {', '.join(missing)} in {folder}; {_cifar_help(cls, root)}"))
        elif bad:
            rows.append(dict(dataset=kind, status="corrupt",
                             detail=f"{', '.join(bad)} in {folder} fail their md5 check; delete {folder} and "
                                    + _cifar_help(cls, root)))
        else:
            rows.append(dict(dataset=kind, status="present", detail=f"{folder} (md5 checked)"))
    archive = root / ALIASES["cifar10-jpeg"]
    decoded = cache_dir(root) / "decoded"
    if not archive.is_file():
        rows.append(dict(dataset="cifar10-jpeg", status="missing",
                         detail=f"no {archive}; put the ImageFolder archive "
                                "cifar10-jpeg/{train,test}/<class>/*.jpg there"))
    elif list(decoded.glob(f"cifar10-jpeg-{_md5(archive)[:16]}-*.pt")):   # decoded from this very file before
        rows.append(dict(dataset="cifar10-jpeg", status="present", detail=f"{archive} (decoded, cached in {decoded})"))
    else:
        try:
            with tarfile.open(archive) as tar:
                n = sum(1 for m in tar if m.isfile())
            rows.append(dict(dataset="cifar10-jpeg", status="present",
                             detail=f"{archive} ({n} files; decoded on first use into {decoded})"))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            rows.append(dict(dataset="cifar10-jpeg", status="corrupt",
                             detail=f"{archive} cannot be read ({e}); replace it with a complete copy"))
    raw = root / "mnist" / "MNIST" / "raw"
    try:
        _mnist_check(root, md5=True)
        rows.append(dict(dataset="addnist", status="present",
                         detail=f"MNIST in {raw} (md5 checked); AddNIST is generated once into "
                                f"{cache_dir(root) / 'addnist'}"))
    except DataError as e:
        rows.append(dict(dataset="addnist", status="missing" if "missing" in str(e) else "corrupt", detail=str(e)))
    return rows
