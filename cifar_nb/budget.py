"""The rules every model in the book is held to.

A classifier may have at most 100,000 trainable parameters and 10,000 optimisation steps; a generator
at most 1,000,000 parameters and 50,000 steps. For a GAN the count is generator plus discriminator,
which is how the reports themselves count (report E: "a total of 998553 parameters").
A run refuses to start outside its budget unless it is explicitly marked out of budget (report D's
CNNs had no budget by that report's design), and that mark travels with every number it produces.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn


@dataclass(frozen=True)
class Budget:
    name: str
    max_params: int
    max_steps: int


CLASSIFIER = Budget("classifier", 100_000, 10_000)
GENERATOR = Budget("generator", 1_000_000, 50_000)
OUT_OF_BUDGET_MARK = "OUT OF BUDGET"

# run kinds -> the budget that binds them
BUDGET_OF_KIND = {"classifier": CLASSIFIER, "gan": GENERATOR, "diffusion": GENERATOR}


class BudgetError(ValueError):
    """A run that would break the rules it is held to."""


def budget_for(kind: str) -> Budget:
    try:
        return BUDGET_OF_KIND[kind]
    except KeyError:
        raise BudgetError(f"unknown run kind {kind!r}; expected one of {sorted(BUDGET_OF_KIND)}") from None


def count_params(*modules: nn.Module) -> int:
    """Trainable parameters, summed over every module given (a GAN passes G and D)."""
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def check(kind: str, n_params: int, steps: int, out_of_budget: bool = False) -> Budget:
    """Raise BudgetError unless the run fits its budget or is marked out of budget."""
    b = budget_for(kind)
    if steps <= 0:
        raise BudgetError(f"steps must be a positive number of optimisation steps, got {steps}")
    if out_of_budget:
        return b
    problems = []
    if n_params > b.max_params:
        problems.append(f"{n_params:,} parameters > {b.max_params:,} allowed")
    if steps > b.max_steps:
        problems.append(f"{steps:,} steps > {b.max_steps:,} allowed")
    if problems:
        raise BudgetError(
            f"{kind} run refused: " + "; ".join(problems)
            + f" (the {b.name} budget). Shrink the model or the step count, or mark the experiment "
            "out_of_budget=True if it deliberately sits outside the rules (its numbers are then marked "
            f"'{OUT_OF_BUDGET_MARK}')."
        )
    return b


def audit(kind: str, n_params: int, steps: int, out_of_budget: bool = False) -> dict:
    """A small dict for run cards and leaderboards: usage against the budget."""
    b = budget_for(kind)
    return {
        "budget": b.name,
        "params": n_params, "max_params": b.max_params,
        "steps": steps, "max_steps": b.max_steps,
        "params_ok": n_params <= b.max_params, "steps_ok": steps <= b.max_steps,
        "out_of_budget": bool(out_of_budget),
        "mark": OUT_OF_BUDGET_MARK if out_of_budget else "",
    }
