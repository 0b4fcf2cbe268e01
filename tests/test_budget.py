import pytest
import torch.nn as nn

from cifar_nb import budget
from cifar_nb.budget import BudgetError


def test_count_params_counts_trainable_only_and_sums_modules():
    a, b = nn.Linear(10, 5), nn.Linear(5, 1)          # 55 and 6 parameters
    assert budget.count_params(a) == 55
    assert budget.count_params(a, b) == 61
    b.weight.requires_grad_(False)
    assert budget.count_params(a, b) == 56


@pytest.mark.parametrize("kind,params,steps", [
    ("classifier", 100_000, 10_000), ("gan", 1_000_000, 50_000), ("diffusion", 999_999, 1)])
def test_at_the_limit_is_allowed(kind, params, steps):
    budget.check(kind, params, steps)


@pytest.mark.parametrize("kind,params,steps,what", [
    ("classifier", 100_001, 10_000, "parameters"),
    ("classifier", 99_000, 10_001, "steps"),
    ("gan", 1_000_052, 50_000, "parameters"),       # report A's generator, as claimed
    ("diffusion", 996_863, 50_001, "steps"),
])
def test_over_budget_is_refused_with_a_clear_message(kind, params, steps, what):
    with pytest.raises(BudgetError, match=what) as e:
        budget.check(kind, params, steps)
    assert "out_of_budget" in str(e.value)           # says how to proceed deliberately


def test_out_of_budget_mark_lets_a_run_through_and_shows():
    budget.check("classifier", 10_393_946, 20_000, out_of_budget=True)   # report D's CNN2
    a = budget.audit("classifier", 10_393_946, 20_000, out_of_budget=True)
    assert a["mark"] == budget.OUT_OF_BUDGET_MARK and not a["params_ok"]


def test_nonsense_is_refused():
    with pytest.raises(BudgetError, match="positive"):
        budget.check("classifier", 10, 0)
    with pytest.raises(BudgetError, match="unknown run kind"):
        budget.check("regressor", 10, 10)
