"""A chapter's first and last cells, so that a notebook holds only its narrative and its calls.

    P, runs = chapter.start(globals(), "B-classifier")   # first cell: parameters checked, runs made or
                                                         # reused, run card shown
    chapter.show_figure(runs["C-generator"][0], "figure_random")
    chapter.finish(P)                                     # last cell: the notebook's wall time on the run card

`start` reads papermill's parameters from the notebook's namespace, so the parameters cell stays the one
place where a chapter's knobs are written down.
"""
from __future__ import annotations

import io
from pathlib import Path

from IPython.display import Image, display
from PIL import Image as PILImage

from cifar_nb.book.cards import run_card, summary_card
from cifar_nb.book.display import Markdown, rel_path
from cifar_nb.book.params import Params, validate_parameters
from cifar_nb.engine.artifacts import RunResult

# The papermill parameters every chapter has (tests/test_notebooks.py checks that each notebook defines them).
PARAMETERS = ("device", "dataset", "data_root", "steps", "batch_size", "seeds", "fid_samples", "results_dir",
              "preview", "full_budget")


def parameters(namespace: dict, **overrides) -> dict:
    missing = [k for k in PARAMETERS if k not in namespace and k not in overrides]
    if missing:
        raise ValueError(f"the notebook's parameters cell does not define {', '.join(missing)}")
    return {k: overrides.get(k, namespace[k]) for k in PARAMETERS}


def start(namespace: dict, *experiments: str, run: bool = True, **overrides):
    """Check the notebook's parameters, train or reuse every seed of `experiments`, show the run card.
    Returns (Params, {experiment: [RunResult per seed]}); with run=False, (Params, None) and no card yet."""
    P = validate_parameters(list(experiments), **parameters(namespace, **overrides))
    if not run:
        return P, None
    runs = P.run_all()
    show_run_card(P, runs)
    return P, runs


def start_summary(namespace: dict) -> Params:
    """The summary chapter's first cell: it trains nothing and reads what results/ holds."""
    P = validate_parameters([], **parameters(namespace))
    P.card = display(summary_card(P), display_id=True)
    return P


def show_run_card(P: Params, results: dict[str, list[RunResult]]) -> None:
    """Display the run card and keep its handle, so finish(P) can add the notebook's total time."""
    P.results = dict(results)
    P.card = display(run_card(P, results), display_id=True)


def finish(P: Params) -> None:
    if P.card is not None and P.experiments:
        P.card.update(run_card(P, P.results, final=True))
    elif P.card is not None:
        P.card.update(summary_card(P))


def show_figure(result: RunResult, key: str, max_side: int = 512):
    """A figure a generator run wrote (metrics[key] names the PNG in its run folder), as a compact JPEG
    so that committed notebooks stay small; the PNG itself stays in results/."""
    name = result.metrics.get(key)
    path = result.run_dir / name if name else None
    if path is None or not path.exists():
        return Markdown(f"*figure {key!r} is not in {rel_path(result.run_dir)}; re-run the experiment to make it*")
    return show_image(path, max_side)


def show_image(path, max_side: int = 900):
    """One image file (a figure in results/) as a compact JPEG, at most `max_side` pixels on its long side."""
    path = Path(path)
    if not path.exists():
        return Markdown(f"*figure {rel_path(path)} is missing; re-run the cell that makes it*")
    im = PILImage.open(path).convert("RGB")
    if max(im.size) > max_side:
        f = max_side / max(im.size)
        im = im.resize((round(im.width * f), round(im.height * f)), PILImage.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=60, optimize=True)   # the committed notebooks must stay small
    return Image(data=buf.getvalue(), format="jpeg")
