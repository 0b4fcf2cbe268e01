# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (cifar-nb)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Report C, classifier: a small DenseNet trained with AugMix
#
# Report C uses dense connectivity {cite:p}`huang2017densenet` to make the most of a small budget: inside each of four dense blocks,
# every layer sees the feature maps of all the layers before it. With five layers per block and a growth
# rate of 8, the network stays under 100,000 parameters. Training leans on augmentation: reflected
# random crops, horizontal flips and AugMix {cite:p}`hendrycks2020augmix`. This chapter rebuilds the network, re-runs the recipe over
# several seeds and sets the outcome against the report's accuracies.

# %% tags=["parameters", "remove-cell"]
device = "auto"          # auto | cpu | cuda | cuda:N
dataset = None           # None: the report's dataset (CIFAR-100)
data_root = None         # None: $CIFAR_NB_DATA
steps = None             # None: the report's 10,000
batch_size = None        # None: the report's 512
seeds = [0, 1, 2]
fid_samples = None       # generators only
results_dir = None       # None: the project's results/
preview = False
full_budget = None       # in a preview: {experiment: [seeds]} shown from finished full-budget runs

# %% tags=["remove-input", "remove-stdout", "remove-stderr", "nbval-ignore-output"]
from cifar_nb.book import chapter, plots, report

P, runs = chapter.start(globals(), "C-classifier")

# %% [markdown]
# ## What the report claims
#
# The report states the parameter count, the final train loss and the two accuracies with a ± figure.
# Its training graph (lost in conversion) was drawn at batch 512 and learning rate 0.0075.

# %%
report.claims_list("C-classifier")

# %% [markdown]
# ## Our reading of the network
#
# The report describes each layer as batch normalisation {cite:p}`ioffe2015batchnorm`, ReLU and a 3x3 convolution, and each
# transition as a 1x1 convolution followed by 2x2 average pooling. It does not give the stem width,
# whether transitions compress the channels, or the head; the model's description says what we chose.

# %% tags=["remove-input"]
report.architecture("C-classifier")

# %% [markdown]
# The report names the batch size and the learning rate but not the optimiser or a schedule. We use
# Adam {cite:p}`kingma2015adam` at a constant 0.0075, the simplest reading that matches the stated numbers. AugMix is
# torchvision's `v2.AugMix` {cite:p}`torchvision2016` with its default settings, applied image by image on the training device.

# %%
report.recipe(P, "C-classifier")

# %% [markdown]
# ## Parameters and budget

# %% tags=["full-width"]
report.budget_table(P, runs)

# %% [markdown]
# ## Training curves
#
# One thin line per seed; the thick line and band are the mean ± sample standard deviation over seeds.
# Train accuracy is measured like test accuracy, on a fixed set of 10,000 training images without
# augmentation; the accuracy on the augmented batches the network trains on is the "stream" curve.

# %% mystnb={"figure": {"caption": "Report C's classifier: accuracy against step. One thin line per seed; with two seeds or more, the thick line and band are their mean ± sample std. stream_acc is measured in training mode on the augmented (AugMix) batches, train_acc and test_acc in eval mode.", "name": "fig-report-c-classifier-1"}}
plots.plot_history(runs["C-classifier"], keys=("train_acc", "test_acc", "stream_acc"), ylabel="accuracy",
                   title="Report C classifier: accuracy")

# %% mystnb={"figure": {"caption": "Report C's classifier: cross-entropy against step, per seed, measured as in the accuracy figure.", "name": "fig-report-c-classifier-2"}}
plots.plot_history(runs["C-classifier"], keys=("train_loss", "test_loss"), ylabel="cross-entropy",
                   title="Report C classifier: loss")

# %% [markdown]
# ## Claimed against measured

# %% tags=["full-width"]
report.claims_table(P, runs)

# %% mystnb={"figure": {"caption": "Report C's classifier: each claimed accuracy, with the spread the report states, beside our mean over seeds. A hollow marker is not comparable: another dataset, or fewer steps than the report.", "name": "fig-report-c-classifier-3"}}
plots.plot_claims(report.claim_rows(P, runs, "acc"), title="Report C classifier", xlabel="accuracy (%)")

# %%
report.ours_table(runs, ["train_acc", "stream_acc", "test_acc", "best_test_acc", "train_loss", "stream_loss",
                        "test_loss"])

# %% tags=["remove-input"]
report.verdict_summary(P, runs)

# %% [markdown]
# ## Reading the result
#
# The report pairs a train loss of 1.144 with a train accuracy of 66.4 %. It does not say whether that
# loss was measured on augmented batches; with AugMix and crops, the loss on training batches is
# higher than on clean training images, so the two readings differ. Our tables give both: `train_loss`
# on clean images and `stream_loss` on the augmented batches.

# %% tags=["remove-input", "nbval-ignore-output"]
chapter.finish(P)
