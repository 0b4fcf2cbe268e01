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

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import DATASET_SHAPES

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

PROJECT_ROOT = Path(__file__).resolve().parents[1]   # the folder that holds the cifar_nb package

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
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    if kind == "cifar100":
        return DatasetInfo("cifar100", "CIFAR-100", 100, 32, 3, False, CIFAR100_MEAN, CIFAR100_STD)
    if kind == "cifar10":
        return DatasetInfo("cifar10", "CIFAR-10", 10, 32, 3, False, CIFAR10_MEAN, CIFAR10_STD)
    if kind == "addnist":
        return DatasetInfo("addnist", "AddNIST (regenerated from MNIST)", 20, 28, 3, False, MNIST_MEAN, MNIST_STD,
                           splits=("train", "val", "test"))
    if dataset == "cifar10-jpeg":
        # the alias is known: its normalisation is CIFAR-10's and it has train/ and test/
        return DatasetInfo("cifar10-jpeg", "CIFAR-10 (JPEG stand-in)", 10, 32, 3, True, CIFAR10_MEAN, CIFAR10_STD)
    return _imagefolder(dataset, arg, "train", root)[1]


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


def _check_split(dataset, split, splits):
    if split not in splits:
        raise DataError(f"{dataset} has no split {split!r}; valid splits: {', '.join(splits)}")


def train_val_split(imageset: ImageSet, n_val: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """A seeded random split into (train, val), each in the original order (report D: n_val=10_000)."""
    n = len(imageset)
    if not isinstance(n_val, int) or not 0 < n_val < n:
        raise DataError(f"n_val must be an integer between 1 and {n - 1} (the set has {n} images), got {n_val!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return imageset.subset(perm[n_val:].sort().values), imageset.subset(perm[:n_val].sort().values)


# ---------------------------------------------------------------------------------------------
# CIFAR-100 / CIFAR-10: torchvision's loader, whose md5 checks run before any pickle is opened

def _cifar_class(kind):
    import torchvision.datasets as tvd
    return tvd.CIFAR100 if kind == "cifar100" else tvd.CIFAR10


def _cifar_files(cls) -> list[tuple[str, str]]:
    return [tuple(x) for x in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]


def _cifar_help(cls, root: Path) -> str:
    return (f"download {cls.url} (md5 {cls.tgz_md5}) and extract it into {root} (it creates {cls.base_folder}/), "
            f"or allow the download with download=True or CIFAR_NB_DOWNLOAD=1")


def _load_cifar(kind, split, root, download) -> ImageSet:
    from torchvision.datasets.utils import check_integrity
    cls, info = _cifar_class(kind), describe(kind)
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


# ---------------------------------------------------------------------------------------------
# ImageFolder trees and archives
#
# An archive is read straight into memory rather than extracted: writing 60,000 small files took 21 s of
# the stand-in's first load here, reading them from the archive 6 s. What is cached is the decoded tensor,
# so nothing extracted can be left half-written.

def _source(arg: str, root) -> Path:
    path = Path(arg).expanduser()
    if not path.is_absolute():
        path = data_root(root) / path
    if not path.exists():
        raise DataError(f"imagefolder source {path} not found (relative paths resolve against the data root); "
                        "give an ImageFolder folder or a .tar.gz of one")
    if not path.is_dir() and not path.name.endswith(ARCHIVE_EXTENSIONS):
        raise DataError(f"imagefolder source {path} is neither a folder nor an archive "
                        f"({', '.join(ARCHIVE_EXTENSIONS)})")
    return path


def _is_image(rel: str) -> bool:
    return rel.lower().endswith(IMAGE_EXTENSIONS) and not any(p.startswith(".") for p in rel.split("/"))


def _files(src: Path) -> dict[str, object]:
    """Relative posix path -> bytes (archive) or Path (folder), images only."""
    if src.is_dir():
        return {p.relative_to(src).as_posix(): p for p in sorted(src.rglob("*"))
                if p.is_file() and _is_image(p.relative_to(src).as_posix())}
    try:
        with tarfile.open(src) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar if m.isfile() and _is_image(m.name)}
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"cannot read {src}: {e}. The archive is truncated or corrupt: "
                        "replace it with a complete copy") from None


def _dirs(src: Path) -> set[str]:
    """Relative posix paths of every folder in an ImageFolder tree (a folder or an archive)."""
    if src.is_dir():
        return {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_dir()}
    try:
        with tarfile.open(src) as tar:
            return {m.name.rstrip("/") for m in tar if m.isdir()}
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        return set()


def _empty_class_folders(src: Path, split: str, rels: list[str], depth: int, dirs: set[str]) -> list[str]:
    """Class folders of `split` that hold no image: silently dropping one would train with fewer classes."""
    if not rels:
        return []
    prefix = "/".join(rels[0].split("/")[:depth])
    level = [d for d in dirs if len(d.split("/")) == depth + 1 and (not prefix or d.startswith(prefix + "/"))]
    used = {"/".join(r.split("/")[:depth + 1]) for r in rels}
    return sorted(d for d in level if d not in used)


def _splits(src: Path, files: dict) -> tuple[dict[str, list[str]], int]:
    """Split name -> relative paths of its images, and how many folders down the class folder is
    (after any wrapper folder such as cifar10-jpeg/, and train/ val/ test/ when the tree has them)."""
    if not files:
        raise DataError(f"no images found in {src}: an ImageFolder tree needs <class>/<image> files "
                        f"({', '.join(IMAGE_EXTENSIONS)}), optionally inside train/ and test/")
    depth = 0
    while True:
        parts = [rel.split("/") for rel in files]
        first = {p[depth] for p in parts}
        if len(first) == 1 and all(len(p) >= depth + 3 for p in parts) and not first & {"train", "val", "test"}:
            depth += 1
        else:
            break
    if "train" not in first:
        if first & {"val", "test"}:
            raise DataError(f"{src} has {'/ and '.join(sorted(first & {'val', 'test'}))}/ but no train/: "
                            "add train/, or give a plain <class>/<image> tree")
        return {"train": list(files)}, depth
    by_split = {s: [r for r, p in zip(files, parts) if p[depth] == s] for s in ("train", "val", "test")}
    return {s: rels for s, rels in by_split.items() if rels}, depth + 1


def _classes(src: Path, split: str, rels: list[str], depth: int) -> tuple[list[str], list[str], list[int]]:
    """Class folders sit `depth` levels down each path; images directly at that level have no class."""
    rels = [r for r in rels if len(r.split("/")) > depth + 1]
    if not rels:
        raise DataError(f"no images in class folders in {src} ({split}): an ImageFolder tree needs "
                        "<class>/<image> files, optionally inside train/ and test/")
    classes = sorted({r.split("/")[depth] for r in rels})
    rels = sorted(rels)
    return classes, rels, [classes.index(r.split("/")[depth]) for r in rels]


def _decode(src: Path, rels: list[str], files: dict, desc: str) -> torch.Tensor:
    """All images as one uint8 [N, 3, H, W] tensor; they must all have the same size."""
    from torchvision.io import ImageReadMode, decode_image
    from tqdm.auto import tqdm
    # torchvision 0.29 deprecates its image decoders for torchcodec's; they are still 2-3x faster than PIL here
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
    out = None
    for i, rel in enumerate(tqdm(rels, desc=desc, unit="img", mininterval=1.0)):
        raw = files[rel]
        raw = raw.read_bytes() if isinstance(raw, Path) else raw
        try:
            img = decode_image(torch.frombuffer(bytearray(raw), dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError:   # a format torchvision.io does not read (bmp, tiff, ...): PIL does
            try:
                from PIL import Image
                with Image.open(io.BytesIO(raw)) as im:
                    img = torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())
            except Exception as e:
                raise DataError(f"cannot decode image {rel} in {src}: corrupt, truncated or not an image "
                                f"({type(e).__name__}); replace or remove it") from None
        if out is None:
            if img.shape[1] != img.shape[2]:
                raise DataError(f"{rel} in {src} is {img.shape[2]}x{img.shape[1]}; images must be square")
            out = torch.empty((len(rels), *img.shape), dtype=torch.uint8)
        elif img.shape != out.shape[1:]:
            raise DataError(f"{rel} in {src} is {img.shape[2]}x{img.shape[1]} but {rels[0]} is "
                            f"{out.shape[3]}x{out.shape[2]}: all images of an ImageFolder must have the same "
                            "size; resize the tree first")
        out[i] = img
    return out


def _mean_std(images: torch.Tensor) -> tuple[tuple, tuple]:
    s = torch.zeros(images.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    for chunk in images.split(4096):
        x = chunk.double().div_(255)
        s += x.sum((0, 2, 3))
        s2 += x.square().sum((0, 2, 3))
    n = images.numel() / images.shape[1]
    mean = s / n
    std = (s2 / n - mean ** 2).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def _expect_shape(dataset: str, src: Path, obj: dict) -> None:
    known = DATASET_SHAPES.get(dataset)
    n, c, h, w = obj["images"].shape
    if known and (len(obj["classes"]), h, c) != (known["num_classes"], known["image_size"], known["in_channels"]):
        raise DataError(f"{src} holds {len(obj['classes'])} classes of {c}x{h}x{w} images; {dataset} should have "
                        f"{known['num_classes']} classes of {known['in_channels']}x{known['image_size']}x"
                        f"{known['image_size']}: replace it with the right archive")


def _decode_tree(dataset: str, src: Path, split: str, fingerprint: str) -> dict[str, dict]:
    """Every split at once: reading the archive is the slow part, so do it once."""
    files = _files(src)
    splits, depth = _splits(src, files)
    _check_split(dataset, split, tuple(splits))
    out = {}
    dirs = _dirs(src)
    for s, rels in splits.items():
        classes, rels, labels = _classes(src, s, rels, depth)
        empty = _empty_class_folders(src, s, rels, depth, dirs)
        if empty:
            raise DataError(f"class folder{'s' if len(empty) > 1 else ''} {', '.join(empty[:5])} in {src} "
                            f"hold{'s' if len(empty) == 1 else ''} no images ({len(empty)} in all): a model trained "
                            "on this tree would silently have fewer classes. Put images in them or remove them")
        if s != "train" and classes != out["train"]["classes"]:
            only = sorted(set(classes) - set(out["train"]["classes"]))
            lacks = sorted(set(out["train"]["classes"]) - set(classes))
            raise DataError(f"{s}/ and train/ in {src} have different class folders ({s}/ only: {only[:5]}, "
                            f"train/ only: {lacks[:5]}): every split needs the same classes")
        images = _decode(src, rels, files, f"decoding {src.name} {s} (once, then cached)")
        labels = torch.tensor(labels, dtype=torch.long)
        mean, std = _mean_std(images if s == "train" else out["train"]["images"])
        lossless = (".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")
        out[s] = dict(version=CACHE_VERSION, fingerprint=fingerprint, images=images, labels=labels, classes=classes,
                      splits=list(splits), files=rels, lossless=all(r.lower().endswith(lossless) for r in rels),
                      mean=mean, std=std, checksum=_checksum(images, labels))
        _expect_shape(dataset, src, out[s])
    return out


def _imagefolder(dataset: str, arg: str, split: str, root) -> tuple[ImageSet, DatasetInfo]:
    src = _source(arg, root)
    fingerprint = _tree_fingerprint(src) if src.is_dir() else _md5(src)
    path = lambda s: cache_dir(root) / "decoded" / f"{src.name.split('.')[0]}-{fingerprint[:16]}-{s}.pt"
    obj = _cached(path(split), fingerprint)
    if obj is None:
        decoded = _decode_tree(dataset, src, split, fingerprint)
        for s, o in decoded.items():
            _atomic_save(o, path(s))
        obj = decoded[split]
    _expect_shape(dataset, src, obj)
    classes, (_, c, h, _) = obj["classes"], obj["images"].shape
    if dataset in ALIASES:
        info = describe(dataset)
    else:
        # real CIFAR-100 only if it could be: its 100 classes, 32x32, losslessly stored pixels
        real = classes == CIFAR100_CLASSES and h == 32 and obj["lossless"]
        info = DatasetInfo(dataset, "CIFAR-100 (ImageFolder copy)" if real else f"ImageFolder '{src.name}' (stand-in)",
                           len(classes), h, c, not real, tuple(obj["mean"]), tuple(obj["std"]), tuple(obj["splits"]))
    return ImageSet(obj["images"], obj["labels"], list(classes), info, extra={"files": np.array(obj["files"])}), info


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
    import torchvision.datasets as tvd
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
    return ImageSet(obj["images"], obj["labels"], [str(i) for i in range(20)], describe("addnist"),
                    extra={"digit_index": obj["digit_index"],
                           "digit_source": "MNIST test" if split == "test" else "MNIST train"})


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
    import numpy as np
    path = data_root(root) / "cifar100-sample.npz"
    if not path.is_file():
        raise DataError(f"no {path.name} in {path.parent}: it holds the real CIFAR-100 images the book shows")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def check(root=None) -> list[dict]:
    """One row per dataset: {dataset, status: present|missing|corrupt, detail: where it looked, what to do}."""
    from torchvision.datasets.utils import check_integrity
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
