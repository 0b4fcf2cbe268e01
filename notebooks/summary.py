# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (cifar-nb)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Leaderboard: every claim against our runs
#
# This chapter trains nothing. It reads the finished runs in `results/` for every experiment in the
# book and sets each report's headline number beside ours, with the verdict that the rules in the
# {doc}`methods appendix <methods>` give. Where several sets of runs exist for one experiment, the one
# closest to the report's set-up is used: the report's dataset first, then its step count, then the
# most seeds.

# %% tags=["parameters", "remove-cell"]
device = "auto"          # unused here: nothing is trained
dataset = None           # unused here
data_root = None         # unused here
steps = None             # unused here
batch_size = None        # unused here
seeds = [0, 1, 2]        # unused here
fid_samples = None       # unused here
results_dir = None       # None: the project's results/
preview = False
full_budget = None       # in a preview: {experiment: [seeds]} shown from finished full-budget runs

# %% tags=["remove-input", "nbval-ignore-output"]
from cifar_nb.book import chapter, plots, report

P = chapter.start_summary(globals())

# %% [markdown]
# ## What has been run
#
# Per experiment: whether its best set of runs is at the report's full budget or a preview, the steps,
# seeds, device, dataset and date of those runs, and the verdict of its headline claim. The intro page
# shows the same table.

# %% tags=["full-width"]
from IPython.display import Markdown
from cifar_nb.book import status

Markdown(status.status_markdown(P.results_dir))

# %% [markdown]
# ## The leaderboard
#
# One row per experiment: its parameter count (ours and the report's), the steps our runs trained
# against the report's, the dataset they used, the report's headline number and ours as mean ±
# sample standard deviation over seeds (n = number of seeds), and the verdict with its reason.

# %% tags=["full-width"]
report.leaderboard(P.results_dir)

# %%
report.verdict_counts(P.results_dir)

# %% [markdown]
# ## Classifier accuracies at a glance
#
# The report's headline accuracy (with its stated ±) beside ours (mean ± std over seeds). A point
# without a partner means that side has no number.

# %% mystnb={"figure": {"caption": "Headline accuracies: each claimed accuracy, with the spread the report states, beside our mean over seeds. A hollow marker is not comparable: another dataset, or fewer steps than the report.", "name": "fig-summary-1"}}
plots.plot_claims(report.leaderboard_claim_rows(P.results_dir, "acc"), title="Headline accuracies",
                  xlabel="accuracy (%)")

# %% [markdown]
# ## Every claim
#
# The leaderboard shows one number per experiment; the reports make more. Here is each of them, with
# where in the report it is printed.

# %% tags=["full-width"]
report.all_claims(P.results_dir)

# %% [markdown]
# ## Notes on the rules
#
# - Report A's generator states 1,000,052 parameters, over the 1,000,000 budget that the same report
#   says it met. Its verdict is fixed by that alone; our own network for it fits the budget.
# - Report D set itself no parameter budget: its three best networks have 2.5 to 10.4 million
#   parameters. Its runs here are marked out of budget wherever they appear, and its chapter also runs
#   the same search held to the classifier budget.
# - Report E's classifier is trained on AddNIST, regenerated here from MNIST by the published recipe {cite:p}`geada2024addnist`;
#   its verdict is drawn against that copy.
# - No FID is drawn from the substitute FD-cls score: a generator's FID claim stays "unmeasurable here"
#   until the Inception weights and the CIFAR-100 test set are available to the run.

# %% tags=["remove-input", "nbval-ignore-output"]
chapter.finish(P)
