"""ImageFolder trees and archives, decoded once into the cache."""
from __future__ import annotations

import io
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
import torchvision.io
from tqdm.auto import tqdm

from cifar_nb.config import DATASET_SHAPES
from cifar_nb.engine.data.core import (
    ALIASES,
    ARCHIVE_EXTENSIONS,
    CACHE_VERSION,
    CIFAR100_CLASSES,
    IMAGE_EXTENSIONS,
    DataError,
    DatasetInfo,
    ImageSet,
    _atomic_save,
    _cached,
    _check_split,
    _checksum,
    _md5,
    _tree_fingerprint,
    cache_dir,
    data_root,
    known_info,
)

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
    # torchvision 0.29 deprecates its image decoders for torchcodec's; they are still 2-3x faster than PIL here
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
    out = None
    for i, rel in enumerate(tqdm(rels, desc=desc, unit="img", mininterval=1.0)):
        raw = files[rel]
        raw = raw.read_bytes() if isinstance(raw, Path) else raw
        try:
            img = torchvision.io.decode_image(torch.frombuffer(bytearray(raw), dtype=torch.uint8),
                                             mode=torchvision.io.ImageReadMode.RGB)
        except RuntimeError:   # a format torchvision.io does not read (bmp, tiff, ...): PIL does
            try:
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
        info = known_info(dataset)
    else:
        # real CIFAR-100 only if it could be: its 100 classes, 32x32, losslessly stored pixels
        real = classes == CIFAR100_CLASSES and h == 32 and obj["lossless"]
        info = DatasetInfo(dataset, "CIFAR-100 (ImageFolder copy)" if real else f"ImageFolder '{src.name}' (stand-in)",
                           len(classes), h, c, not real, tuple(obj["mean"]), tuple(obj["std"]), tuple(obj["splits"]))
    return ImageSet(obj["images"], obj["labels"], list(classes), info, extra={"files": np.array(obj["files"])}), info
