"""CIFAR-100 and CIFAR-10 through torchvision's loader, whose md5 checks run before any pickle is opened."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torchvision.datasets as tvd
from torchvision.datasets.utils import check_integrity

from cifar_nb.engine.data.core import DataError, ImageSet, data_root, known_info

# ---------------------------------------------------------------------------------------------
# CIFAR-100 / CIFAR-10: torchvision's loader, whose md5 checks run before any pickle is opened

def _cifar_class(kind):
    return tvd.CIFAR100 if kind == "cifar100" else tvd.CIFAR10


def _cifar_files(cls) -> list[tuple[str, str]]:
    return [tuple(x) for x in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]


def _cifar_help(cls, root: Path) -> str:
    return (f"download {cls.url} (md5 {cls.tgz_md5}) and extract it into {root} (it creates {cls.base_folder}/), "
            f"or allow the download with download=True or CIFAR_NB_DOWNLOAD=1")


def _load_cifar(kind, split, root, download) -> ImageSet:
    cls, info = _cifar_class(kind), known_info(kind)
    root = data_root(root, must_exist=not download)
    folder = root / cls.base_folder
    missing = [name for name, _ in _cifar_files(cls) if not (folder / name).is_file()]
    if missing and not download:
        raise DataError(f"{info.display_name} not found: missing {', '.join(missing)} in {folder}. "
                        + _cifar_help(cls, root))
    try:
        if download:
            root.mkdir(parents=True, exist_ok=True)
        ds = cls(str(root), train=split == "train", download=download)
    except RuntimeError:  # torchvision's "not found or corrupted": it compared md5s and unpickled nothing
        bad = [name for name, md5 in _cifar_files(cls) if not check_integrity(str(folder / name), md5)]
        raise DataError(f"{info.display_name} is corrupt: {', '.join(bad) or 'a file'} in {folder} "
                        f"failed its md5 check (truncated or modified; nothing was unpickled). Delete "
                        f"{folder} and {_cifar_help(cls, root)}") from None
    except OSError as e:  # includes URLError: no network
        if not download:
            raise DataError(f"cannot read {folder}: {e}") from None
        raise DataError(f"could not download {cls.url} ({e}). On a machine with network, "
                        + _cifar_help(cls, root)) from None
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    s = ImageSet(images, torch.tensor(ds.targets, dtype=torch.long), list(ds.classes), info)
    if kind == "cifar100":
        # torchvision keeps only the fine labels; read the coarse ones from the same, md5-checked, pickle
        with open(folder / cls.train_list[0][0] if split == "train" else folder / cls.test_list[0][0], "rb") as f:
            s.coarse_labels = torch.tensor(pickle.load(f, encoding="latin1")["coarse_labels"], dtype=torch.long)
        with open(folder / cls.meta["filename"], "rb") as f:
            s.extra["coarse_classes"] = list(pickle.load(f, encoding="latin1")["coarse_label_names"])
    return s
