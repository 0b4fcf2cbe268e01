"""The data layer's types, where things are (data root, cache), and the cache's integrity checks."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cifar_nb.config import PROJECT_ROOT

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,) * 3, (0.3081,) * 3

NAMES = "cifar100, cifar10, cifar10-jpeg, addnist, imagefolder:<folder or .tar.gz>"
ALIASES = {"cifar10-jpeg": "cifar10-jpeg.tar.gz"}
ADDNIST_SEED = 0
ADDNIST_SIZES = {"train": 45_000, "val": 15_000, "test": 10_000}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ARCHIVE_EXTENSIONS = (".tar.gz", ".tgz", ".tar")
CACHE_VERSION = 1   # bump when the layout of a cache file changes

CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()


class DataError(RuntimeError):
    """A dataset is missing, corrupt or malformed. The message says what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    display_name: str       # what plots and tables call it; says "stand-in" unless it is the real thing
    num_classes: int
    image_size: int
    channels: int
    standin: bool
    mean: tuple             # per channel, on the 0..1 scale, used by augment.normalize
    std: tuple
    splits: tuple = ("train", "test")
    # Does a left-right mirror image keep its label? True for photographs (CIFAR, an image folder); False for
    # AddNIST, whose labels are sums of digits, which a mirror turns into other shapes. augment's "auto" flips
    # (and the classifier's "auto" flip test-time augmentation) read it.
    mirror_invariant: bool = True
    # Does the label survive a permutation of the colour channels? True only for AddNIST, whose label is the sum
    # of the three channels' digits (and whose three channels share MNIST's mean and std). augment's "auto"
    # channel_shuffle and the classifier's "symmetries" test-time augmentation read it.
    channel_order_invariant: bool = False


@dataclass
class ImageSet:
    images: torch.Tensor            # uint8 [N, C, H, W]
    labels: torch.Tensor            # int64 [N]
    classes: list
    info: DatasetInfo
    coarse_labels: torch.Tensor | None = None   # CIFAR-100's 20 superclasses
    extra: dict = field(default_factory=dict)   # per-image tensors/arrays ([N, ...], subset along), and notes

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "ImageSet":
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.labels.device)

        def pick(v):
            if isinstance(v, torch.Tensor) and len(v) == len(self):
                return v[idx.to(v.device)]
            return v[idx.cpu().numpy()] if isinstance(v, np.ndarray) and len(v) == len(self) else v
        return ImageSet(self.images[idx], self.labels[idx], self.classes, self.info,
                        None if self.coarse_labels is None else self.coarse_labels[idx],
                        {k: pick(v) for k, v in self.extra.items()})

    def to(self, device) -> "ImageSet":
        move = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t
        return ImageSet(move(self.images), move(self.labels), self.classes, self.info, move(self.coarse_labels),
                        {k: move(v) for k, v in self.extra.items()})


# ---------------------------------------------------------------------------------------------
# where things are


# How `python -m cifar_nb data check` names each rule of `locate_data_root`.
DATA_ROOT_RULES = {
    "argument": "given as --data-root / root=",
    "env": "from $CIFAR_NB_DATA",
    "beside": "found beside the project: ../shared/data",
    "cwd": "./data",
}


def _beside_project() -> Path:
    """The shared data folder beside the clone, as the Makefile finds it: <project>/../shared/data."""
    return PROJECT_ROOT.parent / "shared" / "data"


def locate_data_root(root=None, must_exist: bool = True) -> tuple[Path, str]:
    """The data root and the rule that chose it (a key of DATA_ROOT_RULES).

    The `root` argument wins; else the Makefile's rule: $CIFAR_NB_DATA (used as given, even if it is not a
    folder: then, with must_exist, the error says so), else ../shared/data beside the project, else ./data in
    the working directory. When none of the three is set or exists, the error names the places it looked."""
    if root is not None:
        rule = "argument"
    elif os.environ.get("CIFAR_NB_DATA"):
        root, rule = os.environ["CIFAR_NB_DATA"], "env"
    else:
        beside, here = _beside_project(), Path("data").absolute()
        if beside.is_dir():
            return beside, "beside"
        if here.is_dir():
            return here, "cwd"
        raise DataError("no data root found. Looked at: $CIFAR_NB_DATA (not set); "
                        f"{beside} (../shared/data beside the project: no such folder); "
                        f"{here} (./data in the working directory: no such folder). Pass root=... "
                        "(--data-root) or set CIFAR_NB_DATA to the folder that holds the datasets "
                        "(cifar-100-python/, cifar10-jpeg.tar.gz, mnist/, ...)")
    root = Path(root).expanduser()
    if must_exist and not root.is_dir():
        where = "root=... (--data-root)" if rule == "argument" else "CIFAR_NB_DATA"
        raise DataError(f"data root {root} does not exist or is not a folder: fix {where}")
    return root, rule


def data_root(root=None, must_exist: bool = True) -> Path:
    """`root` if given, else $CIFAR_NB_DATA, else ../shared/data beside the project, else ./data."""
    return locate_data_root(root, must_exist)[0]


def cache_dir(root=None) -> Path:
    """$CIFAR_NB_CACHE, else $XDG_CACHE_HOME/cifar_nb, else ~/.cache/cifar_nb; never inside the data root.

    A data folder is the user's, often shared or read-only, so nothing derived from it is written there.
    (`root` is accepted for the callers' symmetry; the cache does not depend on it: entries are named by a
    fingerprint of their source.)"""
    if os.environ.get("CIFAR_NB_CACHE"):
        path = Path(os.environ["CIFAR_NB_CACHE"]).expanduser()
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "cifar_nb"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _tree_fingerprint(folder: Path) -> str:
    """Cheap stand-in for hashing every file of a tree: relative path, size and mtime of each."""
    h = hashlib.md5()
    for dirpath, dirnames, filenames in sorted(os.walk(folder)):
        dirnames.sort()
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name))
            h.update(f"{os.path.relpath(os.path.join(dirpath, name), folder)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _checksum(*tensors) -> str:
    h = hashlib.md5()
    for t in tensors:
        h.update(memoryview(t.contiguous().numpy()).cast("B"))   # no copy
    return h.hexdigest()


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(path: Path, fingerprint: str):
    """The cache entry at `path` if it is whole and made from this source, else None (and it is removed)."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        ok = (obj.get("version") == CACHE_VERSION and obj.get("fingerprint") == fingerprint
              and obj.get("checksum") == _checksum(obj["images"], obj["labels"]))
    except Exception:
        ok = False
    if not ok:
        path.unlink(missing_ok=True)
        return None
    return obj


def known_info(dataset: str) -> DatasetInfo | None:
    """The DatasetInfo of a dataset known by name (no file is read), or None for a generic imagefolder."""
    if dataset == "cifar100":
        return DatasetInfo("cifar100", "CIFAR-100", 100, 32, 3, False, CIFAR100_MEAN, CIFAR100_STD)
    if dataset == "cifar10":
        return DatasetInfo("cifar10", "CIFAR-10", 10, 32, 3, False, CIFAR10_MEAN, CIFAR10_STD)
    if dataset == "addnist":
        return DatasetInfo("addnist", "AddNIST (regenerated from MNIST)", 20, 28, 3, False, MNIST_MEAN, MNIST_STD,
                           splits=("train", "val", "test"), mirror_invariant=False,
                           channel_order_invariant=True)
    if dataset == "cifar10-jpeg":
        # the alias is known: its normalisation is CIFAR-10's and it has train/ and test/
        return DatasetInfo("cifar10-jpeg", "CIFAR-10 (JPEG stand-in)", 10, 32, 3, True, CIFAR10_MEAN, CIFAR10_STD)
    return None


def _check_split(dataset, split, splits):
    if split not in splits:
        raise DataError(f"{dataset} has no split {split!r}; valid splits: {', '.join(splits)}")
