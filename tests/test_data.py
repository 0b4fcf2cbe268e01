"""The data layer: canonical CIFAR pickles, ImageFolder trees and archives, AddNIST, splits, and every
bad input's one clear error."""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_nb.config import DATASET_SHAPES
from cifar_nb.engine import data
from cifar_nb.engine.data import DataError

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("CIFAR_NB_CACHE", str(path))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------
# names, roots, shapes

def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError, match="unknown dataset 'cifar1000'; valid names: cifar100, cifar10, "
                                        "cifar10-jpeg, addnist, imagefolder:"):
        data.load("cifar1000")
    with pytest.raises(DataError, match="valid names"):
        data.describe("imagefolder:")


@pytest.fixture
def no_default_root(tmp_path, monkeypatch):
    """No $CIFAR_NB_DATA, a project whose ../shared/data does not exist, a working directory without data/."""
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)
    project = tmp_path / "clone" / "project"
    project.mkdir(parents=True)
    monkeypatch.setattr(data.core, "PROJECT_ROOT", project)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return SimpleNamespace(project=project, beside=tmp_path / "clone" / "shared" / "data", cwd_data=work / "data")


def test_data_root_from_param_then_env(tmp_path, no_default_root, monkeypatch):
    with pytest.raises(DataError, match="set CIFAR_NB_DATA"):
        data.data_root()
    monkeypatch.setenv("CIFAR_NB_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    assert data.data_root(tmp_path / "x", must_exist=False) == tmp_path / "x"
    with pytest.raises(DataError, match="does not exist"):
        data.data_root(tmp_path / "missing")


def test_data_root_follows_the_makefile_rule(no_default_root, tmp_path, monkeypatch):
    """$CIFAR_NB_DATA, then ../shared/data beside the project, then ./data; the argument beats them all."""
    env_root = tmp_path / "env-data"
    for folder in (env_root, no_default_root.beside, no_default_root.cwd_data):
        folder.mkdir(parents=True)
    assert data.locate_data_root() == (no_default_root.beside, "beside")
    monkeypatch.setenv("CIFAR_NB_DATA", str(env_root))
    assert data.locate_data_root() == (env_root, "env")
    assert data.locate_data_root(tmp_path) == (tmp_path, "argument")
    monkeypatch.setenv("CIFAR_NB_DATA", "")            # what the Makefile exports when ../shared/data is absent
    assert data.locate_data_root() == (no_default_root.beside, "beside")
    no_default_root.beside.rmdir()
    assert data.locate_data_root() == (no_default_root.cwd_data, "cwd")
    assert data.data_root() == no_default_root.cwd_data and data.data_root().is_absolute()
    # $CIFAR_NB_DATA set to a missing folder is an error, not a quiet fall-back to the next rule
    monkeypatch.setenv("CIFAR_NB_DATA", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"typo does not exist or is not a folder: fix CIFAR_NB_DATA"):
        data.data_root()
    assert data.data_root(must_exist=False) == tmp_path / "typo"


def test_no_data_root_names_the_three_places_it_looked(no_default_root):
    with pytest.raises(DataError) as e:
        data.data_root()
    msg = str(e.value)
    assert "$CIFAR_NB_DATA (not set)" in msg
    assert str(no_default_root.beside) in msg and "../shared/data" in msg
    assert str(no_default_root.cwd_data) in msg and "./data" in msg
    with pytest.raises(DataError, match="no data root found"):
        data.data_root(must_exist=False)
    with pytest.raises(DataError, match="no data root found"):
        data.check()


def test_data_check_says_which_rule_found_the_root(no_default_root, tmp_path, monkeypatch, capsys, cache):
    from cifar_nb import cli
    no_default_root.beside.mkdir(parents=True)
    assert cli.main(["data", "check"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"data root: {no_default_root.beside} (found beside the project: ../shared/data)"
    monkeypatch.setenv("CIFAR_NB_DATA", str(tmp_path))
    assert cli.main(["data", "check"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"data root: {tmp_path} (from $CIFAR_NB_DATA)"
    monkeypatch.delenv("CIFAR_NB_DATA")
    no_default_root.beside.rmdir()
    no_default_root.cwd_data.mkdir()
    assert cli.main(["data", "check"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"data root: {no_default_root.cwd_data} (./data)"
    assert cli.main(["data", "check", "--data-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("(given as --data-root / root=)")
    no_default_root.cwd_data.rmdir()
    with pytest.raises(SystemExit, match="no data root found.*shared/data.*./data"):
        cli.main(["data", "check"])


def test_cache_dir_is_never_inside_the_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR_NB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "data"
    root.mkdir()                      # writable: still not used
    monkeypatch.setenv("CIFAR_NB_DATA", str(root))
    assert data.cache_dir(root) == tmp_path / "xdg" / "cifar_nb"
    assert not (root / ".cache").exists()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir(root) == tmp_path / "home" / ".cache" / "cifar_nb"
    monkeypatch.setenv("CIFAR_NB_CACHE", str(tmp_path / "mine"))
    assert data.cache_dir(root) == tmp_path / "mine"


def test_describe_is_cheap_and_matches_known_shapes(monkeypatch):
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)   # no root needed for the named datasets
    for name, shape in DATASET_SHAPES.items():
        info = data.describe(name)
        assert (info.num_classes, info.image_size, info.channels) == tuple(shape.values()), name
        assert len(info.mean) == len(info.std) == info.channels
    assert data.describe().name == "cifar100" and not data.describe().standin
    assert data.describe("cifar100").mean == data.CIFAR100_MEAN
    assert data.describe("addnist").mean == (0.1307,) * 3 and data.describe("addnist").std == (0.3081,) * 3
    assert data.describe("addnist").splits == ("train", "val", "test")
    jpeg = data.describe("cifar10-jpeg")
    assert jpeg.standin and jpeg.display_name == "CIFAR-10 (JPEG stand-in)" and "CIFAR-100" not in jpeg.display_name


# ---------------------------------------------------------------------------------------------
# canonical CIFAR-100 (torchvision's loader, md5 checked)

def test_cifar100_canonical_loads_fine_and_coarse(synthetic_cifar100):
    syn = synthetic_cifar100
    for split in ("train", "test"):
        s = data.load("cifar100", split, root=syn.root)
        ref = getattr(syn, split)
        assert s.images.dtype == torch.uint8 and s.images.shape == (len(ref["images"]), 3, 32, 32)
        assert torch.equal(s.images, torch.from_numpy(ref["images"]))
        assert s.labels.dtype == torch.int64 and s.labels.tolist() == [int(v) for v in ref["fine"]]
        assert s.coarse_labels.tolist() == [int(v) for v in ref["coarse"]]
        assert s.classes == data.CIFAR100_CLASSES and len(s.extra["coarse_classes"]) == 20
        assert s.info.display_name == "CIFAR-100" and not s.info.standin
    if syn.real_meta and syn.real_images:   # the real sample: first train image is cattle, superclass 11
        s = data.load("cifar100", "train", root=syn.root)
        assert s.classes[s.labels[0]] == "cattle"
        assert s.extra["coarse_classes"][s.coarse_labels[0]] == "large_omnivores_and_herbivores"


def test_cifar100_missing_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tvc
    monkeypatch.delenv("CIFAR_NB_DOWNLOAD", raising=False)
    monkeypatch.setattr(tvc, "download_and_extract_archive", lambda *a, **k: pytest.fail("downloaded unasked"))
    with pytest.raises(DataError) as e:
        data.load("cifar100", root=tmp_path)
    msg = str(e.value)
    assert "missing train, test, meta" in msg and str(tmp_path / "cifar-100-python") in msg
    assert CIFAR100_URL in msg and "CIFAR_NB_DOWNLOAD=1" in msg


def test_cifar100_download_only_when_allowed(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.cifar as tvc
    calls = []

    def offline(url, *a, **k):
        calls.append(url)
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(tvc, "download_and_extract_archive", offline)
    monkeypatch.setenv("CIFAR_NB_DOWNLOAD", "1")
    with pytest.raises(DataError, match=f"could not download {CIFAR100_URL}"):
        data.load("cifar100", root=tmp_path / "new")
    assert calls == [CIFAR100_URL]
    with pytest.raises(DataError, match="missing"):
        data.load("cifar100", root=tmp_path, download=False)   # the argument beats the environment
    assert len(calls) == 1


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_cifar100_corrupt_file_refused_by_md5_before_unpickling(synthetic_cifar100, monkeypatch, damage):
    from torchvision.datasets import CIFAR100
    path = synthetic_cifar100.folder / "train"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else raw[:-100] + bytes([raw[-100] ^ 1]) + raw[-99:])
    unpickled = []
    real_load = pickle.load
    monkeypatch.setattr(pickle, "load", lambda *a, **k: unpickled.append(1) or real_load(*a, **k))
    # torchvision itself compares md5s before it opens any pickle ...
    with pytest.raises(RuntimeError, match="corrupted"):
        CIFAR100(str(synthetic_cifar100.root), train=False)
    # ... and our loader turns that into one error naming the file
    with pytest.raises(DataError) as e:
        data.load("cifar100", "test", root=synthetic_cifar100.root)
    assert unpickled == []
    assert "corrupt: train in" in str(e.value) and "md5" in str(e.value) and CIFAR100_URL in str(e.value)
    assert [r["status"] for r in data.check(synthetic_cifar100.root) if r["dataset"] == "cifar100"] == ["corrupt"]


def test_cifar10_canonical(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    g = np.random.default_rng(0)
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        batches[name] = dict(data=g.integers(0, 256, (8, 3072), dtype=np.uint8), labels=list(g.integers(0, 10, 8)))
        (folder / name).write_bytes(pickle.dumps(batches[name]))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    md5 = lambda n: __import__("hashlib").md5((folder / n).read_bytes()).hexdigest()
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", dict(CIFAR10.meta, md5=md5("batches.meta")))
    s = data.load("cifar10", "train", root=tmp_path)
    assert s.images.shape == (40, 3, 32, 32) and s.coarse_labels is None and s.info.display_name == "CIFAR-10"
    assert torch.equal(s.images[:8].flatten(1), torch.from_numpy(batches["data_batch_1"]["data"]))
    assert s.labels[8:16].tolist() == [int(v) for v in batches["data_batch_2"]["labels"]]
    assert [r["status"] for r in data.check(tmp_path)][:2] == ["missing", "present"]


# ---------------------------------------------------------------------------------------------
# ImageFolder trees and archives

def write_tree(root: Path, images: np.ndarray, labels, classes, split: str | None = "train", ext=".png"):
    for i, (img, y) in enumerate(zip(images, labels)):
        d = root / (split or "") / classes[y]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(d / f"{i:04d}{ext}")


@pytest.fixture
def tree(tmp_path):
    """A small PNG ImageFolder with train/ and test/ (lossless, so pixels can be compared)."""
    g = np.random.default_rng(0)
    classes = ["cat", "dog", "emu"]
    out = {}
    for split, n in (("train", 30), ("test", 12)):
        images = g.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = np.arange(n) % 3
        write_tree(tmp_path / "tree", images, labels, classes, split)
        out[split] = (images, labels)
    return tmp_path / "tree", classes, out


def expected_order(images, labels, classes):
    """ImageFolder order: by class, then by file name."""
    order = sorted(range(len(labels)), key=lambda i: (classes[labels[i]], f"{i:04d}"))
    return images[order], labels[order]


def test_imagefolder_tree_and_tarball(tree, tmp_path, cache, monkeypatch):
    folder, classes, ref = tree
    with tarfile.open(tmp_path / "tree.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="wrapper")   # archives usually wrap the tree in one folder
    for source in (str(folder), "tree.tar.gz"):
        for split in ("train", "test"):
            s = data.load(f"imagefolder:{source}", split, root=tmp_path)
            images, labels = expected_order(*ref[split], classes)
            assert s.classes == classes and torch.equal(s.images, torch.from_numpy(images))
            assert s.labels.tolist() == labels.tolist()
            assert s.info.standin and "stand-in" in s.info.display_name and s.info.splits == ("train", "test")
            assert s.info.num_classes == 3 and s.info.image_size == 32
    # train mean/std are computed from the images and cached
    x = torch.from_numpy(ref["train"][0]).double() / 255
    assert np.allclose(s.info.mean, x.mean((0, 2, 3)).numpy(), atol=1e-4)
    assert np.allclose(s.info.std, x.permute(1, 0, 2, 3).flatten(1).std(1, unbiased=False).numpy(), atol=1e-4)
    # decoded once: a second load reads the cache and decodes nothing
    monkeypatch.setattr(data.imagefolder, "_decode", lambda *a, **k: pytest.fail("decoded twice"))
    assert data.load("imagefolder:tree.tar.gz", "train", root=tmp_path).images.shape == (30, 3, 32, 32)
    assert data.describe("imagefolder:tree.tar.gz", root=tmp_path).num_classes == 3
    assert not [f for f in leftovers(cache) if f.endswith(".tmp")]


def test_imagefolder_cache_follows_the_source(tree, tmp_path, cache):
    folder, classes, ref = tree
    a = data.load(f"imagefolder:{folder}", "train")
    img = folder / "train" / "cat" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    b = data.load(f"imagefolder:{folder}", "train")
    assert a.images[0].any() and not b.images[0].any()


def test_imagefolder_without_splits_and_bad_split(tmp_path, cache):
    g = np.random.default_rng(1)
    write_tree(tmp_path / "flat", g.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8), [0, 1, 0, 1, 0, 1],
               ["a", "b"], split=None)
    s = data.load("imagefolder:flat", "train", root=tmp_path)
    assert len(s) == 6 and s.info.splits == ("train",) and s.info.image_size == 16
    with pytest.raises(DataError, match=r"imagefolder:flat has no split 'test'; valid splits: train"):
        data.load("imagefolder:flat", "test", root=tmp_path)
    sub = s.subset([5, 0])
    assert sub.extra["files"].tolist() == [s.extra["files"][5], s.extra["files"][0]]
    (tmp_path / "flat").rename(tmp_path / "test")
    (tmp_path / "wrap").mkdir()
    (tmp_path / "test").rename(tmp_path / "wrap" / "test")
    with pytest.raises(DataError, match="has test/ but no train/"):
        data.load("imagefolder:wrap", root=tmp_path)


def test_imagefolder_real_cifar100_copy_is_not_a_standin(tmp_path, cache):
    g = np.random.default_rng(2)
    write_tree(tmp_path / "c100", g.integers(0, 256, (100, 3, 32, 32), dtype=np.uint8), list(range(100)),
               data.CIFAR100_CLASSES)
    info = data.load("imagefolder:c100", root=tmp_path).info
    assert info.display_name == "CIFAR-100 (ImageFolder copy)" and not info.standin


def test_interrupted_decode_or_write_leaves_nothing(tree, tmp_path, cache, monkeypatch):
    import torchvision.io
    folder, _, _ = tree
    real = torchvision.io.decode_image
    seen = []

    def killed_midway(*a, **k):
        seen.append(1)
        if len(seen) > 10:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(torchvision.io, "decode_image", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        data.load(f"imagefolder:{folder}")
    monkeypatch.setattr(torchvision.io, "decode_image", real)
    assert leftovers(cache) == []

    def killed_while_writing(obj, f, *a, **k):
        f.write(b"half")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        data.load(f"imagefolder:{folder}")
    assert leftovers(cache) == []
    monkeypatch.undo()
    monkeypatch.setenv("CIFAR_NB_CACHE", str(cache))
    assert len(data.load(f"imagefolder:{folder}")) == 30
    assert len(leftovers(cache)) == 2   # train and test, nothing else


def test_corrupt_cache_entry_is_rebuilt(tree, cache):
    folder, _, _ = tree
    a = data.load(f"imagefolder:{folder}")
    entry = next((cache / "decoded").glob("*-train.pt"))
    entry.write_bytes(entry.read_bytes()[:1000])
    assert torch.equal(data.load(f"imagefolder:{folder}").images, a.images)


def test_imagefolder_bad_inputs(tree, tmp_path, cache):
    folder, classes, _ = tree
    # wrong path
    with pytest.raises(DataError, match=r"imagefolder source .*nowhere not found \(relative paths resolve"):
        data.load("imagefolder:nowhere", root=tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="neither a folder nor an archive"):
        data.load("imagefolder:notes.txt", root=tmp_path)
    # truncated archive
    with tarfile.open(tmp_path / "t.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="t")
    raw = (tmp_path / "t.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cannot read .*cut.tar.gz: .*truncated or corrupt: replace it"):
        data.load("imagefolder:cut.tar.gz", root=tmp_path)
    # empty ImageFolder
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images found in .*empty: an ImageFolder tree needs <class>/<image>"):
        data.load("imagefolder:empty", root=tmp_path)
    # an image of another size
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(folder / "train" / "dog" / "9999.png")
    with pytest.raises(DataError, match=r"dog/9999.png in .* is 28x28 but train/cat/0000.png is 32x32: all images"):
        data.load(f"imagefolder:{folder}")
    (folder / "train" / "dog" / "9999.png").unlink()
    # an undecodable image
    (folder / "train" / "emu" / "0005.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot decode image train/emu/0005.png in .*: corrupt, truncated or not an image"):
        data.load(f"imagefolder:{folder}")
    # test/ with other classes than train/
    (folder / "train" / "emu" / "0005.png").unlink()
    (folder / "test" / "emu").rename(folder / "test" / "yak")
    with pytest.raises(DataError, match=r"different class folders \(test/ only: \['yak'\], train/ only: \['emu'\]\)"):
        data.load(f"imagefolder:{folder}", "test")
    assert leftovers(cache) == []   # no error wrote anything


def test_standin_alias_checks_its_shape(tmp_path, cache, monkeypatch):
    g = np.random.default_rng(3)
    write_tree(tmp_path / "x" / "cifar10-jpeg", g.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8),
               [0, 1, 2] * 2, ["a", "b", "c"])
    with tarfile.open(tmp_path / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "x" / "cifar10-jpeg", arcname="cifar10-jpeg")
    with pytest.raises(DataError, match=r"holds 3 classes of 3x32x32 images; cifar10-jpeg should have 10 classes"):
        data.load("cifar10-jpeg", root=tmp_path)
    assert leftovers(cache) == []


# ---------------------------------------------------------------------------------------------
# splits and devices

def toy_set(n=100):
    info = data.describe("cifar10")
    return data.ImageSet(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone(),
                         torch.arange(n) % 10, [str(i) for i in range(10)], info,
                         extra={"index": torch.arange(n), "note": "kept"})


def test_train_val_split_seeded_and_disjoint():
    s = toy_set()
    train, val = data.train_val_split(s, n_val=20, seed=0)
    assert len(train) == 80 and len(val) == 20
    ti, vi = train.extra["index"].tolist(), val.extra["index"].tolist()
    assert not set(ti) & set(vi) and sorted(ti + vi) == list(range(100))
    assert ti == sorted(ti) and torch.equal(train.images[:, 0, 0, 0].long(), train.extra["index"])
    assert torch.equal(train.labels, train.extra["index"] % 10) and val.extra["note"] == "kept"
    assert data.train_val_split(s, 20, seed=0)[1].extra["index"].tolist() == vi
    assert data.train_val_split(s, 20, seed=1)[1].extra["index"].tolist() != vi
    for bad in (0, 100, 2.5):
        with pytest.raises(DataError, match="n_val must be an integer between 1 and 99"):
            data.train_val_split(s, bad, seed=0)


def test_device_placement(synthetic_cifar100):
    s = data.load("cifar100", "test", root=synthetic_cifar100.root, device="cpu")
    assert s.images.device.type == s.labels.device.type == s.coarse_labels.device.type == "cpu"
    if torch.cuda.is_available():
        c = data.load("cifar100", "test", root=synthetic_cifar100.root, device="cuda")
        assert c.images.is_cuda and c.labels.is_cuda and c.coarse_labels.is_cuda
        assert torch.equal(c.images.cpu(), s.images)
        assert c.subset(torch.tensor([2, 0])).images.is_cuda


# ---------------------------------------------------------------------------------------------
# the real offline data under the data root

@pytest.mark.realdata
def test_real_cifar100_present_or_clearly_missing(data_root):
    if (data_root / "cifar-100-python").is_dir():
        s = data.load("cifar100", "test", root=data_root)
        assert len(s) == 10_000 and s.classes == data.CIFAR100_CLASSES
        z = np.load(data_root / "cifar100-sample.npz")
        assert torch.equal(s.images[:916], torch.from_numpy(z["test_images_first"]))
    else:
        with pytest.raises(DataError, match=f"CIFAR-100 not found: missing train, test, meta in {data_root}"):
            data.load("cifar100", root=data_root, download=False)


@pytest.mark.realdata
def test_real_check_rows(data_root):
    rows = data.check(data_root)
    assert [r["dataset"] for r in rows] == ["cifar100", "cifar10", "cifar10-jpeg", "addnist"]
    assert all(set(r) == {"dataset", "status", "detail"} and r["status"] in ("present", "missing", "corrupt")
               for r in rows)
    status = {r["dataset"]: r["status"] for r in rows}
    assert status["cifar10-jpeg"] == status["addnist"] == "present"
    assert status["cifar100"] == ("present" if (data_root / "cifar-100-python").is_dir() else "missing")


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The image decoding")
def test_real_standin(data_root):
    """The 60k JPEGs are decoded once per cache (about 20 s on 2 cores), then read back in about a second."""
    train = data.load("cifar10-jpeg", "train", root=data_root)
    test = data.load("cifar10-jpeg", "test", root=data_root)
    assert train.images.shape == (50_000, 3, 32, 32) and test.images.shape == (10_000, 3, 32, 32)
    assert train.images.dtype == torch.uint8
    assert train.labels.bincount().tolist() == [5000] * 10 and test.labels.bincount().tolist() == [1000] * 10
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert train.info.display_name == "CIFAR-10 (JPEG stand-in)" and train.info.standin
    assert data.load("imagefolder:cifar10-jpeg.tar.gz", "test", root=data_root).info.standin
    # spot-check pixels against the first test image of the archive, decoded on its own
    from torchvision.io import decode_jpeg
    with tarfile.open(data_root / "cifar10-jpeg.tar.gz") as tar:
        member = next(m for m in tar if m.isfile() and m.name.startswith("cifar10-jpeg/test/"))
        raw = tar.extractfile(member).read()
    i = test.extra["files"].tolist().index(member.name)
    assert torch.equal(decode_jpeg(torch.frombuffer(bytearray(raw), dtype=torch.uint8)), test.images[i])
    assert test.classes[test.labels[i]] == member.name.split("/")[-2]


# ---------------------------------------------------------------------------------------------
# AddNIST

@pytest.fixture(scope="session")
def addnist(data_root):
    return data.make_addnist(data_root, seed=data.ADDNIST_SEED)


@pytest.fixture(scope="session")
def mnist(data_root):
    import torchvision.datasets as tvd
    return {s: tvd.MNIST(str(data_root / "mnist"), train=s == "train", download=False) for s in ("train", "test")}


@pytest.mark.realdata
@pytest.mark.slow
def test_addnist_recipe(addnist, mnist):
    for split, n in (("train", 45_000), ("val", 15_000), ("test", 10_000)):
        images, labels, index = addnist[split]
        assert images.shape == (n, 3, 28, 28) and images.dtype == torch.uint8
        assert labels.bincount(minlength=20).tolist() == [n // 20] * 20      # 20 balanced classes
        src = mnist["test" if split == "test" else "train"]
        digits = src.targets[index]                                         # [n, 3] the digits r, g, b
        assert torch.equal(labels, digits.sum(1) - 1)                       # label = r + g + b - 1
        for c in range(3):
            assert torch.equal(images[:, c], src.data[index[:, c]])         # each channel is that MNIST image
    # test digits come from MNIST test, train and val digits from MNIST train
    assert addnist["test"][2].max() < 10_000 and addnist["train"][2].max() >= 10_000
    # within a label, every triple with that sum is equally likely: label 0 is (1,0,0), (0,1,0), (0,0,1)
    images, labels, index = addnist["train"]
    ones = mnist["train"].targets[index[labels == 0]].argmax(1).bincount(minlength=3)
    assert ones.sum() == 2250 and (ones - 750).abs().max() < 120
    # label 19 (sum 20) has 36 triples, far from uniform over digits
    twenty = mnist["train"].targets[index[labels == 19]]
    assert (twenty.sum(1) == 20).all() and len({tuple(t) for t in twenty.tolist()}) == 36


@pytest.mark.realdata
def test_addnist_deterministic_per_seed(data_root):
    small = dict(train=200, val=40, test=60)
    a = data.make_addnist(data_root, seed=0, sizes=small)
    b = data.make_addnist(data_root, seed=0, sizes=small)
    c = data.make_addnist(data_root, seed=1, sizes=small)
    for s in small:
        assert all(torch.equal(x, y) for x, y in zip(a[s], b[s]))
        assert not torch.equal(a[s][2], c[s][2])
    with pytest.raises(DataError, match="multiples of 20"):
        data.make_addnist(data_root, sizes=dict(train=30))


@pytest.mark.realdata
@pytest.mark.slow
def test_addnist_load_is_the_seeded_recipe(addnist, data_root):
    for split in ("train", "test"):
        s = data.load("addnist", split, root=data_root)
        assert torch.equal(s.images, addnist[split][0]) and torch.equal(s.labels, addnist[split][1])
        assert torch.equal(s.extra["digit_index"], addnist[split][2])
        assert s.info.num_classes == 20 and s.info.image_size == 28 and len(s.classes) == 20
    with pytest.raises(DataError, match="addnist has no split 'validation'; valid splits: train, val, test"):
        data.load("addnist", "validation", root=data_root)


@pytest.mark.realdata
def test_addnist_without_mnist(tmp_path, data_root):
    with pytest.raises(DataError, match=r"AddNIST is generated from MNIST, which is missing: train-images-idx3-ubyte"):
        data.load("addnist", root=tmp_path)
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in data.MNIST_FILES:
        src = (data_root / "mnist" / "MNIST" / "raw" / f).read_bytes()
        (raw / f).write_bytes(src[:1000] if f.startswith("t10k-images") else src)
    with pytest.raises(DataError, match="MNIST files t10k-images-idx3-ubyte in .* have the wrong size"):
        data.load("addnist", "test", root=tmp_path)
    assert [r["status"] for r in data.check(tmp_path)] == ["missing", "missing", "missing", "corrupt"]
    src = bytearray((data_root / "mnist" / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes())
    src[5000] ^= 1
    (raw / "t10k-images-idx3-ubyte").write_bytes(src)
    with pytest.raises(DataError, match="MNIST files t10k-images-idx3-ubyte in .* fail their md5 check"):
        data.load("addnist", "test", root=tmp_path)


@pytest.mark.parametrize("as_archive", [False, True])
def test_an_empty_class_folder_is_an_error_that_names_it(tree, tmp_path, cache, as_archive):
    folder, classes, ref = tree
    (folder / "train" / "fox").mkdir()                 # a class with no images: never silently dropped
    source = str(folder)
    if as_archive:
        with tarfile.open(tmp_path / "holes.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="wrapper")
        source = "holes.tar.gz"
    with pytest.raises(DataError, match=r"class folder .*train/fox.* holds no images.*fewer classes"):
        data.load(f"imagefolder:{source}", "train", root=tmp_path)
