"""What a trainer gets besides its config (`RunContext`): where to run and write, when to checkpoint and stop.

The orchestrator (cifar_nb.engine.runs.run) builds it; every trainer takes it and nothing else, so a trainer never
needs to know about results folders, signals or the queue.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cifar_nb.config import RunConfig
from cifar_nb.engine.artifacts import RunCorrupt, atomic_torch_save, checkpoint_path

CHECKPOINT_EVERY_S = 240.0


class RunInterrupted(RuntimeError):
    """Training stopped early (a time limit, a signal, or a simulated kill) after saving a checkpoint."""

    signalled: str | None = None   # "SIGINT" / "SIGTERM" when a signal stopped it


@dataclass
class RunContext:
    """What a trainer gets besides the config: where to run, where to write, when to stop."""

    config: RunConfig
    device: torch.device
    data_root: Path | None
    run_dir: Path
    time_limit_s: float | None = None   # checkpoint and stop once this much wall time has passed
    stop_at_step: int | None = None     # checkpoint and stop at this step (tests simulate a kill)
    progress: bool = True
    progress_interval_s: float = 2.0
    checkpoint_every: int | None = None         # also checkpoint every this many steps (tests)
    checkpoint_every_s: float = CHECKPOINT_EVERY_S
    checkpoint_file: Path | None = None
    runtime: Any = None                 # cifar_nb.engine.runtime.Runtime; the trainer fills in its default
    feature_net: Any = None             # a generator's FD-cls feature network (cifar_nb.engine.evaluate.features.FeatureNet)
    started: float = field(default_factory=time.monotonic)
    history: list = field(default_factory=list)
    signalled: str | None = None        # the name of a SIGINT/SIGTERM that arrived during training

    def __post_init__(self):
        self._last_checkpoint = time.monotonic()

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_file or checkpoint_path(self.config, self.run_dir.parent.parent)

    def save_checkpoint(self, state: dict) -> None:
        state = dict(state, history=list(self.history), elapsed_s=self.elapsed())
        atomic_torch_save(self.checkpoint_path, state)
        self._last_checkpoint = time.monotonic()

    def load_checkpoint(self) -> dict | None:
        if not self.checkpoint_path.exists():
            return None
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        except Exception as e:   # truncated or overwritten: torch raises several kinds
            raise RunCorrupt(f"checkpoint {self.checkpoint_path} of {self.config.experiment} seed {self.config.seed} "
                             f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}). "
                             f"Delete it to start the run over, or pass --force") from None
        if not isinstance(state, dict):
            raise RunCorrupt(f"checkpoint {self.checkpoint_path} does not hold training state; delete it to start "
                             f"the run over, or pass --force")
        self.history = list(state.pop("history", []))
        self._previous_elapsed = state.pop("elapsed_s", 0.0)
        return state

    def elapsed(self) -> float:
        return getattr(self, "_previous_elapsed", 0.0) + time.monotonic() - self.started

    def should_checkpoint(self, step: int) -> bool:
        """Call after finishing `step` (1-based count of steps done)."""
        if self.checkpoint_every and step % self.checkpoint_every == 0:
            return True
        return time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s or self.should_stop(step)

    def should_stop(self, step: int) -> bool:
        if self.signalled is not None:
            return True
        if self.stop_at_step is not None and step >= self.stop_at_step:
            return True
        return self.time_limit_s is not None and time.monotonic() - self.started > self.time_limit_s

    def stop_message(self, step: int) -> str:
        why = f"{self.signalled} received" if self.signalled else "time limit reached" \
            if self.stop_at_step is None or step < self.stop_at_step else "stopped as asked"
        return (f"{self.config.experiment} seed {self.config.seed}: {why} at step {step:,} of "
                f"{self.config.steps:,}; checkpoint saved in {self.checkpoint_path}. Run the same command "
                f"again to resume")

    def log(self, **row) -> None:
        self.history.append(row)

    def progress_bar(self, initial: int = 0):
        return tqdm(total=self.config.steps, initial=initial, disable=not self.progress,
                    desc=f"{self.config.experiment} seed {self.config.seed}", unit="step",
                    mininterval=self.progress_interval_s, dynamic_ncols=True)
