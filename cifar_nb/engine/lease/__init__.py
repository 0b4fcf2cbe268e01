"""The GPU lease kit: pack what a lent H200 machine lacks, train the queue there, bring the results back.

A lease is one device command (at most 10 minutes, 64 MiB uploaded: the git tree plus carried folders; at most
8 files of under 16 MiB each, 64 MiB together, come back through $OUT). The machine has Python 3.12, torch
2.11, torchvision 0.26, numpy, pillow, scipy, tqdm, PyYAML, packaging, typing-extensions and MarkupSafe, but
no torch-fidelity, lpips, optuna (nor alembic, SQLAlchemy, colorlog, Mako) and no network. Three steps:

1. Here, pack (into a git-ignored folder of the checkout, so that it travels only when carried):

       python -m cifar_nb lease pack lease

   lease/wheels/       torch-fidelity, lpips, optuna and their missing pure/cp312 dependencies (pip download;
                       `--no-wheels` skips it). tqdm, PyYAML, packaging, typing_extensions and MarkupSafe ride
                       along as ~1 MiB of fallbacks: the script installs only the wheels whose distribution the
                       machine lacks. Not packed: torch, torchvision, numpy, pillow, scipy (all there; scipy's
                       cp312 wheel is 35 MB and would not fit anyway: `--also scipy==1.17.1` to try), greenlet
                       (SQLAlchemy 2.1 needs it only for asyncio), papermill (the notebooks are not run there).
   lease/data/         cifar10-jpeg.tar.gz as it is (the code reads the archive) and mnist.tar.gz (MNIST's four
                       raw IDX files, all AddNIST generation needs).
   lease/checkpoints/  the checkpoint of every run the queue lists as checkpointed, with manifest.json
                       (experiment, seed, config hash, config, step), so the GPU resumes where this machine
                       stopped.
   lease/run-weights.tar.gz  git-ignored weights.pt of finished runs (FD-cls feature nets), when there are any.
   lease/manifest.json sizes, sha256s, the git commit, the complete run folders at packing time.

   Measured (2026-12): wheels 6.5 MiB (SQLAlchemy's 4.5), cifar10-jpeg.tar.gz 18.5 MiB, mnist.tar.gz 11.0 MiB,
   one classifier checkpoint 1.5 MiB: a 37.5 MiB pack + an 8.3 MiB tree = 45.8 MiB. With scipy: 79.4 MiB.

   It refuses, leaving nothing behind, when the tree (tracked + untracked-not-ignored files) and the pack
   together exceed 60 MiB, and says what is large and what to leave out.

2. The device call (the tool `run`):

       command:   bash scripts/lease_run.sh lease 540 8
       carry:     ["lease"]
       timeout_s: 600

   540 is the script's whole budget in seconds (setup, training, export), 8 the queue workers side by side.
   The script installs the missing wheels into a temporary site folder, lays out a temporary data root, cache
   and checkpoint store (`lease restore`), trains with `python -m cifar_nb queue run --device cuda` until
   shortly before the budget ends (then SIGTERM: every worker checkpoints), and writes into $OUT
   (`lease export`): results.tar.gz (every run folder completed during the lease; results-1.tar.gz, ... when
   one file would pass 16 MiB; git-ignored generator*.pt / samples-full*.npz only where room is left),
   ckpt-<experiment>-<hash>.ckpt (each run it left unfinished, smallest first; the largest bundled into
   checkpoints.tar.gz, or dropped with a warning, when the 8-file / 16 MiB / 64 MiB limits demand it),
   queue.log (its last 2 MiB), speed.json (measured steps/s) and manifest.json (sha256s, the checkpoints'
   configs). Finished runs are never dropped: if they alone cannot fit, export refuses and writes nothing.

3. Here again, with the folder the reply names as files_at:

       python -m cifar_nb lease unpack /work/.device/<...>/files

   It checks every file's sha256, every run folder's config hash against its name and its metrics.json, merges
   the new run folders into results/ (never over a complete folder that differs: that is reported and kept in
   the cache's lease-conflicts/), puts the checkpoints into this machine's checkpoint store, merges speed.json
   into benchmarks/results/h200-speed.json and prints the queue's remaining work.

Which run folders come back: `lease restore` writes a snapshot of the complete run folders (by sha256 of
metrics.json) and of the restored checkpoints before the queue starts; `lease export --since SNAPSHOT` sends
exactly the complete folders that are new or changed since, and the checkpoints that are new or changed.
The snapshot is taken on the machine itself, so it holds what really arrived there (tracked and untracked
files alike); a pack's manifest.json also works as --since.

Every sub-command also runs as `python -m cifar_nb.engine.lease ...`; scripts/lease_run.sh calls `restore` and
`export` that way on the device machine (restore: data, checkpoints, snapshot and a dataset warm-up).

Speed: a finished run's steps / wall_time_s from metrics.json (a run resumed from a packed checkpoint counts
only the steps and seconds since), an unfinished run's step and elapsed_s from its checkpoint, likewise.
Seconds include evaluations; with several workers the runs share the GPU (speed.json records the number).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cifar_nb.engine.lease import merging, onsite, packing  # noqa: F401  (tests set their limits there)
from cifar_nb.engine.lease.common import (  # noqa: F401
    BENCH_FILE,
    LeaseError,
    MiB,
    checkpoint_info,
    complete_runs,
    repo_root,
    safe_extract,
)
from cifar_nb.engine.lease.merging import merge_speed, unpack  # noqa: F401
from cifar_nb.engine.lease.onsite import _lay_out, export, restore, take_snapshot  # noqa: F401
from cifar_nb.engine.lease.packing import pack  # noqa: F401

# ---------------------------------------------------------------------------------------------
# command line

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cifar_nb lease", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)

    q = sub.add_parser("pack", help="fill a git-ignored folder (lease/) with what the GPU machine lacks")
    q.add_argument("dir", type=Path, help="the pack folder, e.g. lease")
    q.add_argument("--no-wheels", action="store_true", help="skip pip download (no optuna/torch-fidelity/lpips there)")
    q.add_argument("--no-data", action="store_true", help="pack no datasets")
    q.add_argument("--no-mnist", action="store_true", help="leave MNIST out (no AddNIST runs there)")
    q.add_argument("--no-checkpoints", action="store_true", help="leave the queue's checkpoints out")
    q.add_argument("--also", action="append", default=[], metavar="NAME==VER",
                   help="one more wheel, e.g. scipy==1.17.1")
    q.add_argument("--data-root")
    q.add_argument("--results-dir")

    q = sub.add_parser("restore", help="(on the GPU machine) lay the pack out and snapshot the starting state")
    q.add_argument("dir", type=Path)
    q.add_argument("--snapshot", type=Path, help="write the starting state here (for export --since)")
    q.add_argument("--prewarm", metavar="DEVICE", help="decode the datasets the queue will train on DEVICE")
    q.add_argument("--data-root", help="where the data goes (default: $CIFAR_NB_DATA)")
    q.add_argument("--results-dir")

    q = sub.add_parser("export", help="(on the GPU machine) write what the lease produced into $OUT")
    q.add_argument("dir", type=Path, help="the folder whose files come back ($OUT)")
    q.add_argument("--since", type=Path, help="the snapshot from restore (or a pack's manifest.json)")
    q.add_argument("--log", type=Path, help="the queue's log, sent back as queue.log")
    q.add_argument("--workers", type=int, help="workers that shared the device (recorded with the speeds)")
    q.add_argument("--data-root")
    q.add_argument("--results-dir")

    q = sub.add_parser("unpack", help="verify and merge what a lease brought back")
    q.add_argument("dir", type=Path, help="the folder the files came back to (the reply's files_at)")
    q.add_argument("--bench", type=Path, help=f"speed table to merge into (default {BENCH_FILE})")
    q.add_argument("--data-root")
    q.add_argument("--results-dir")

    args = p.parse_args(argv)
    try:
        if args.action == "pack":
            pack(args.dir, args.data_root, args.results_dir, wheels=not args.no_wheels, data=not args.no_data,
                 mnist=not args.no_mnist, checkpoints=not args.no_checkpoints, also=args.also)
        elif args.action == "restore":
            restore(args.dir, args.data_root, args.results_dir, snapshot=args.snapshot, prewarm=args.prewarm)
        elif args.action == "export":
            export(args.dir, args.results_dir, since=args.since, log_file=args.log, data_root=args.data_root,
                   workers=args.workers)
        else:
            rep = unpack(args.dir, args.results_dir, bench=args.bench, data_root=args.data_root)
            return 1 if rep["refused"] or rep["conflicts"] else 0
    except LeaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


