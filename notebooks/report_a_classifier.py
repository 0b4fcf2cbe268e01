# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (cifar-nb)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Report A, classifier: a residual-bottleneck CNN
#
# Report A's classifier, which its author calls "MyCNN", combines residual connections {cite:p}`he2016resnet`, 1x1 bottleneck
# convolutions, batch normalisation {cite:p}`ioffe2015batchnorm` and ReLU, and is trained with Adam {cite:p}`kingma2015adam` under a cyclic learning-rate
# schedule {cite:p}`smith2017cyclical`. This chapter rebuilds it within the 100,000-parameter budget, trains it for the report's
# 10,000 steps on several seeds, and checks the accuracies the report gives.

# %% tags=["parameters", "remove-cell"]
device = "auto"          # auto | cpu | cuda | cuda:N
dataset = None           # None: the report's dataset (CIFAR-100)
data_root = None         # None: $CIFAR_NB_DATA
steps = None             # None: the report's 10,000
batch_size = None        # None: the report's (our reading: 256)
seeds = [0, 1, 2]
fid_samples = None       # generators only
results_dir = None       # None: the project's results/
preview = False
full_budget = None       # in a preview: {experiment: [seeds]} shown from finished full-budget runs

# %% tags=["remove-input", "remove-stdout", "remove-stderr", "nbval-ignore-output"]
from cifar_nb.book import chapter, plots, report

P, runs = chapter.start(globals(), "A-classifier")

# %% [markdown]
# ## What the report claims
#
# The report gives one parameter count and one set of numbers at the end of training, with a ± figure
# for the two accuracies (it does not say over what). Its results section blames the gap between train
# and test accuracy on the batch size, which it describes only as "larger".

# %%
report.claims_list("A-classifier")

# %% [markdown]
# ## Our reading of the network
#
# The report's architecture figure did not survive, so the network below is a reconstruction from its
# text: residual and bottleneck blocks with batch normalisation and ReLU, sized to the parameter count
# it states. The model's own description:

# %% tags=["remove-input"]
report.architecture("A-classifier")

# %% [markdown]
# The training recipe, field by field. Where the report is silent we chose the plainest reading: the
# cyclic schedule is PyTorch's `CyclicLR` {cite:p}`paszke2019pytorch`, cycling only the learning rate (between 1e-4 and 3e-3, the
# amplitude halving every cycle: the `triangular2` policy of {cite:t}`smith2017cyclical`), since Adam has no momentum term for it to cycle. "A larger batch
# size" is read as 256, and there is no augmentation: the report names crops and colour jitter only as
# future work. A right-hand column appears only where this execution departs from the report's recipe.

# %%
report.recipe(P, "A-classifier")

# %% [markdown]
# ## Parameters and budget

# %% tags=["full-width"]
report.budget_table(P, runs)

# %% [markdown]
# ## Training curves
#
# Each thin line is one seed; the thick line and band are the mean ± sample standard deviation across
# seeds at each evaluation.

# %% mystnb={"figure": {"caption": "Report A's classifier: accuracy against step. One thin line per seed; with two seeds or more, the thick line and band are their mean ± sample std.", "name": "fig-report-a-classifier-1"}}
plots.plot_history(runs["A-classifier"], keys=("train_acc", "test_acc"), ylabel="accuracy",
                   title="Report A classifier: accuracy")

# %% mystnb={"figure": {"caption": "Report A's classifier: cross-entropy against step, per seed, measured as in the accuracy figure.", "name": "fig-report-a-classifier-2"}}
plots.plot_history(runs["A-classifier"], keys=("train_loss", "test_loss"), ylabel="cross-entropy",
                   title="Report A classifier: loss")

# %% [markdown]
# ## Claimed against measured

# %% tags=["full-width"]
report.claims_table(P, runs)

# %% mystnb={"figure": {"caption": "Report A's classifier: each claimed accuracy, with the spread the report states, beside our mean over seeds. A hollow marker is not comparable: another dataset, or fewer steps than the report.", "name": "fig-report-a-classifier-3"}}
plots.plot_claims(report.claim_rows(P, runs, "acc"), title="Report A classifier", xlabel="accuracy (%)")

# %%
report.ours_table(runs, ["train_acc", "stream_acc", "test_acc", "best_test_acc", "train_loss", "stream_loss",
                        "test_loss"])

# %% tags=["remove-input"]
report.verdict_summary(P, runs)

# %% [markdown]
# ## Reading the result
#
# Two things in the report can be checked independently of any training: the parameter count fits the
# budget, and 10,000 steps is the step budget exactly. Everything else depends on the run. A cyclic
# schedule makes the final accuracy sensitive to where in the cycle training stops, which is one
# reason to report the best accuracy seen during training beside the final one, as the table above
# does.

# %% tags=["remove-input", "nbval-ignore-output"]
chapter.finish(P)
