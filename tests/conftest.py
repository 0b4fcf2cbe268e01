"""Shared fixtures.

The offline datasets come from $CIFAR_NB_DATA (the shared data folder); tests that need them take the
`data_root` fixture and are skipped, with the reason, where it is not set.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

# One thread: the suite's tensors are tiny, results are then the same however many cores a machine has,
# and test runs side by side do not fight over the cores.
torch.set_num_threads(1)

# Checkpoints of the suite's runs go to a folder of the test session's, not the user's checkpoint store.
if "CIFAR_NB_CHECKPOINTS" not in os.environ:
    import atexit
    import shutil
    import tempfile
    os.environ["CIFAR_NB_CHECKPOINTS"] = tempfile.mkdtemp(prefix="cifar_nb-test-checkpoints-")
    atexit.register(shutil.rmtree, os.environ["CIFAR_NB_CHECKPOINTS"], ignore_errors=True)   # kept weights too

SKIP_REASON = "offline datasets not found: set CIFAR_NB_DATA to the shared data folder"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("CIFAR_NB_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip(SKIP_REASON)
    return Path(root)


@pytest.fixture
def tmp_results(tmp_path) -> Path:
    return tmp_path / "results"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def synthetic_cifar100(tmp_path, monkeypatch):
    """A small `cifar-100-python/{train,test,meta}` in the canonical pickle format, under tmp_path.

    Images and labels are the real CIFAR-100 sample (cifar100-sample.npz: the first 486 train and 916 test
    images with their fine and coarse labels and filenames) when the data root has it, else random. `meta`
    is the real canonical file when present (its md5 is torchvision's), else generated.
    torchvision's CIFAR100 refuses any file whose md5 is not the official one, so the test swaps the
    class's md5 table (train_list/test_list, and meta when generated) for these files' md5s. The md5
    check itself still runs, against the files' true md5s: a test that corrupts a file after this
    fixture has run is refused just as a corrupted official file would be.
    """
    from torchvision.datasets import CIFAR100

    from cifar_nb.engine.data import CIFAR100_CLASSES
    shared = Path(os.environ.get("CIFAR_NB_DATA", "/nonexistent"))
    sample = shared / "cifar100-sample.npz"
    if sample.is_file():
        with np.load(sample) as z:
            splits = {}
            for s in ("train", "test"):
                images = z[f"{s}_images_first"]
                n = len(images)
                splits[s] = dict(images=images, fine=z[f"{s}_fine"][:n], coarse=z[f"{s}_coarse"][:n],
                                 filenames=z[f"{s}_filenames"][:n])
    else:
        rng = np.random.default_rng(0)
        splits = {s: dict(images=rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                          fine=rng.integers(0, 100, n), coarse=rng.integers(0, 20, n),
                          filenames=np.array([f"img_{s}_{i}.png" for i in range(n)]))
                  for s, n in (("train", 120), ("test", 60))}
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for s, d in splits.items():
        entry = {"filenames": [str(f) for f in d["filenames"]], "batch_label": f"{s}ing batch 1 of 1",
                 "fine_labels": [int(v) for v in d["fine"]], "coarse_labels": [int(v) for v in d["coarse"]],
                 "data": d["images"].reshape(len(d["images"]), -1)}
        with open(folder / s, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    real_meta = shared / "cifar-100-meta" / "meta"
    if real_meta.is_file():
        (folder / "meta").write_bytes(real_meta.read_bytes())
    else:
        with open(folder / "meta", "wb") as f:
            pickle.dump({"fine_label_names": list(CIFAR100_CLASSES),
                         "coarse_label_names": [f"superclass_{i}" for i in range(20)]}, f, protocol=2)
        monkeypatch.setattr(CIFAR100, "meta", dict(CIFAR100.meta, md5=_md5(folder / "meta")))
    monkeypatch.setattr(CIFAR100, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", _md5(folder / "test")]])
    return SimpleNamespace(root=tmp_path, folder=folder, real_meta=real_meta.is_file(),
                           real_images=sample.is_file(), **splits)


@pytest.fixture
def stub_features(monkeypatch, tmp_path):
    """The real generator evaluation, with a fixed random conv net in place of the trained FD-cls classifier
    and an empty torch hub (so FID and LPIPS report themselves unavailable, as offline). Returns the net."""
    from cifar_nb.engine import runs
    from cifar_nb.engine.evaluate import features, fid
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 10))
    fnet = features.FeatureNet(net, lambda x: x.float() / 127.5 - 1, 32, name="fd-cls-test",
                               description="a fixed random conv net (test stub)", run_hash="stub")
    monkeypatch.setattr(runs, "feature_net_for", lambda *a, **k: fnet)
    return fnet
