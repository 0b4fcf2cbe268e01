"""FID: torch-fidelity's standard Inception weights against the CIFAR-100 test set, gated on both being here."""
from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch
import torch_fidelity

from cifar_nb.engine import data
from cifar_nb.engine.artifacts import portable
from cifar_nb.engine.evaluate.features import MetricUnavailable, _fidelity
from cifar_nb.engine.evaluate.sampling import resize_uint8

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"   # what torch-fidelity downloads
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
INCEPTION_ENV = "CIFAR_NB_INCEPTION_WEIGHTS"
FID_REFERENCE = "CIFAR-100 test, 10,000 images"
FID_METRIC = f"FID (torch-fidelity {torch_fidelity.__version__}, inception-v3-compat, 2048-d pool features)"


def hub_checkpoints() -> Path:
    """Where torch.hub (torchvision, torch-fidelity) caches weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()).expanduser().resolve() / "checkpoints"


def inception_weights_file(path=None) -> Path:
    """The Inception weights file to give torch-fidelity, or MetricUnavailable saying where to put it."""
    given = path or os.environ.get(INCEPTION_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            where = "inception_weights=" if path else f"${INCEPTION_ENV}="
            raise MetricUnavailable(f"FID: {where}{given} is not a file. Point it at torch-fidelity's Inception "
                                    f"weights {INCEPTION_FILE}.")
        return p
    p = hub_checkpoints() / INCEPTION_FILE
    if p.is_file():
        return p
    raise MetricUnavailable(
        f"FID needs torch-fidelity's Inception-v3 weights {INCEPTION_FILE} (feature extractor "
        f"'inception-v3-compat'), which are not in the torch hub cache {portable(p.parent)}/ and are not downloaded "
        f"here. Either put the file there (TORCH_HOME moves that cache; the file is {INCEPTION_URL}), or give "
        f"its path explicitly: set {INCEPTION_ENV}=/path/to/{INCEPTION_FILE} or pass inception_weights=... to "
        "evaluate_generator / compute_fid (it reaches torch-fidelity as feature_extractor_weights_path).")


def _raised_loading_weights(e: BaseException) -> bool:
    """Whether `e` came from torch-fidelity's Inception building itself from its weights file."""
    return any(f.filename.endswith("feature_extractor_inceptionv3.py") and f.name == "__init__"
               for f in traceback.extract_tb(e.__traceback__))


def is_cifar100(info) -> bool:
    """Real CIFAR-100 (torchvision's pickles, or a lossless ImageFolder copy the data module vouches for)."""
    return not info.standin and info.num_classes == 100 and info.display_name.startswith("CIFAR-100")


def check_fid_reference(ref) -> None:
    """FID is only ever computed against the real CIFAR-100 test set, all 10,000 images."""
    info = ref.info
    if not is_cifar100(info) or len(ref) != 10_000:
        raise MetricUnavailable(
            f"FID reference must be the real CIFAR-100 test set (10,000 images); got {info.display_name!r} "
            f"with {len(ref)} images. Put the CIFAR-100 python pickles (cifar-100-python/) under the data root.")


def compute_fid(images: torch.Tensor, data_root=None, device="cpu", inception_weights=None, reference=None,
                batch_size: int = 200) -> dict:
    """FID of uint8 images vs the CIFAR-100 test set (torch-fidelity, inception-v3-compat)."""
    weights = inception_weights_file(inception_weights)   # cheap check first, before loading any data
    if reference is None:
        try:
            reference = data.load("cifar100", "test", root=data_root)
        except Exception as e:   # DataError / FileNotFoundError: the full CIFAR-100 is not here
            raise MetricUnavailable(f"FID needs the real CIFAR-100 test set: {e}") from e
    check_fid_reference(reference)
    ref = reference.images.cpu()
    try:
        m = _fidelity(resize_uint8(images, ref.shape[-1]), ref, device, feature_extractor="inception-v3-compat",
                      feature_extractor_weights_path=str(weights), fid=True, batch_size=batch_size)
    except Exception as e:   # torch.load raises several kinds on a file that is not the weights
        if not _raised_loading_weights(e):
            raise
        raise MetricUnavailable(
            f"FID: torch-fidelity could not load the Inception weights {portable(weights)} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}). It is not torch-fidelity's "
            f"{INCEPTION_FILE}, or it is damaged: get the file from {INCEPTION_URL}.") from e
    return {"fid": m[torch_fidelity.KEY_METRIC_FID], "fid_samples": len(images), "fid_reference": FID_REFERENCE,
            "fid_metric": FID_METRIC}
