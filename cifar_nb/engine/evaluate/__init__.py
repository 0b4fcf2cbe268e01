"""Evaluating generators: FID, its offline substitute FD-cls + KID, interpolations, nearest neighbours, figures.

Scores, and when each one is computed:

* FID: torch-fidelity's Fréchet Inception Distance ('inception-v3-compat', the standard TF-Inception
  weights) between the generated images and the CIFAR-100 test set (10,000 images). It needs the weights
  file and the real CIFAR-100 test set. Nothing here downloads: where either is missing, `compute_fid`
  raises `MetricUnavailable` naming the file and where to put it, and `evaluate_generator` records
  fid=None with that reason.
* FD-cls + KID: always computed, offline-safe. The same Fréchet distance (and torch-fidelity's KID),
  but in the penultimate features of a small classifier this project trains on the generator's own
  dataset (report C's DenseNet, `load_feature_net`; trained as a run of its own by cifar_nb.engine.runs). It is
  a different number from FID and is never called FID; it compares runs of this book with each other,
  not with the reports.
* Nearest training neighbours in pixel space (always) and in LPIPS-AlexNet distance (report A's
  "LPIPS 0.146", where torchvision's AlexNet weights are in the torch hub cache).

A trainer hands its model over as a `GeneratorHandle` (evaluate.sampling, which also draws the samples and
the interpolations) and calls `generator.evaluate_generator` once at the end.

Modules: features (FD-cls, KID), fid, neighbours (pixel and LPIPS), sampling, generator (the entry point).
"""
