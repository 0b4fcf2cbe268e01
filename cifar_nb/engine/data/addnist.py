"""AddNIST: report E's dataset, regenerated from MNIST by its published recipe."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torchvision.datasets as tvd

from cifar_nb.engine.data.core import (
    ADDNIST_SEED,
    ADDNIST_SIZES,
    CACHE_VERSION,
    DataError,
    ImageSet,
    _atomic_save,
    _cached,
    _checksum,
    _md5,
    cache_dir,
    data_root,
    known_info,
)

# ---------------------------------------------------------------------------------------------
# AddNIST

MNIST_FILES = {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
               "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}
MNIST_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",   # the canonical uncompressed files
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}


def _mnist_help(raw: Path) -> str:
    return (f"put MNIST's four uncompressed IDX files ({', '.join(MNIST_FILES)}) in {raw} "
            "(torchvision.datasets.MNIST(root=<data root>/mnist, download=True) fetches them where a network allows)")


def _mnist_check(root, md5: bool = False) -> Path:
    raw = data_root(root) / "mnist" / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
    if missing:
        raise DataError(f"AddNIST is generated from MNIST, which is missing: {', '.join(missing)} not in {raw}; "
                        + _mnist_help(raw))
    wrong = [f for f, size in MNIST_FILES.items() if (raw / f).stat().st_size != size]
    if wrong:
        raise DataError(f"MNIST files {', '.join(wrong)} in {raw} have the wrong size (truncated or corrupt); "
                        + _mnist_help(raw))
    wrong = [f for f, h in MNIST_MD5.items() if md5 and _md5(raw / f) != h]
    if wrong:
        raise DataError(f"MNIST files {', '.join(wrong)} in {raw} fail their md5 check (corrupt); " + _mnist_help(raw))
    return raw


def _mnist(root, train: bool):
    _mnist_check(root)
    ds = tvd.MNIST(str(data_root(root) / "mnist"), train=train, download=False)
    return ds.data, ds.targets


def _triples() -> tuple[torch.Tensor, torch.Tensor]:
    """For each label l = r+g+b-1 in 0..19, the digit triples with that sum: table [20, max, 3], counts [20]."""
    by_label = [[] for _ in range(20)]
    for r in range(10):
        for g in range(10):
            for b in range(10):
                if 0 <= r + g + b - 1 <= 19:
                    by_label[r + g + b - 1].append((r, g, b))
    width = max(map(len, by_label))
    table = torch.tensor([t + [(0, 0, 0)] * (width - len(t)) for t in by_label])
    return table, torch.tensor([len(t) for t in by_label])


def _addnist_split(digits: torch.Tensor, digit_labels: torch.Tensor, n: int, g: torch.Generator):
    # exactly n/20 images per label; then a uniformly random triple with that sum. Drawing the label first
    # is the same as weighting each triple by how rare its sum is, the published balancing.
    labels = (torch.arange(n) % 20)[torch.randperm(n, generator=g)]
    table, counts = _triples()
    rgb = table[labels, (torch.rand(n, generator=g, dtype=torch.float64) * counts[labels]).long()]   # [n, 3]
    # then, per channel, a uniformly random MNIST image of that digit
    order = torch.argsort(digit_labels, stable=True)
    sizes = torch.bincount(digit_labels, minlength=10)
    starts = torch.cumsum(sizes, 0) - sizes
    pick = (torch.rand(n, 3, generator=g, dtype=torch.float64) * sizes[rgb]).long()
    index = order[starts[rgb] + pick]                                                                # [n, 3]
    return digits[index], labels, index


def make_addnist(root=None, seed: int = ADDNIST_SEED, sizes: dict | None = None) -> dict[str, tuple]:
    """split -> (images uint8 [N,3,28,28], labels [N], digit_index [N,3]): AddNIST by its published recipe.
    Channel c of image i is MNIST image digit_index[i, c] (of MNIST train for "train" and "val", of MNIST
    test for "test"), and label = sum of the three digits - 1. `sizes` (default 45k/15k/10k) must be
    multiples of 20."""
    sizes = sizes or ADDNIST_SIZES
    if any(n % 20 for n in sizes.values()):
        raise DataError(f"AddNIST split sizes must be multiples of 20 (balanced classes), got {sizes}")
    g = torch.Generator().manual_seed(seed)
    digits = {"train": _mnist(root, True), "test": _mnist(root, False)}
    return {s: _addnist_split(*digits["test" if s == "test" else "train"], n, g) for s, n in sizes.items()}


def _load_addnist(split: str, root, seed: int = ADDNIST_SEED) -> ImageSet:
    _mnist_check(root, md5=True)
    fingerprint = hashlib.md5("".join(MNIST_MD5.values()).encode()).hexdigest()
    path = lambda s: cache_dir(root) / "addnist" / f"addnist-seed{seed}-{fingerprint[:16]}-{s}.pt"
    obj = _cached(path(split), fingerprint)
    if obj is None:
        for s, (images, labels, index) in make_addnist(root, seed).items():
            entry = dict(version=CACHE_VERSION, fingerprint=fingerprint, seed=seed, images=images, labels=labels,
                         digit_index=index, checksum=_checksum(images, labels))
            _atomic_save(entry, path(s))
            if s == split:
                obj = entry
    return ImageSet(obj["images"], obj["labels"], [str(i) for i in range(20)], known_info("addnist"),
                    extra={"digit_index": obj["digit_index"],
                           "digit_source": "MNIST test" if split == "test" else "MNIST train"})
