# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (cifar-nb)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Report C, generator: a five-layer DCGAN
#
# Report C's generator is the most economical of the four: a symmetric DCGAN {cite:p}`radford2016dcgan` of five layers on each
# side, 595,840 parameters in all, turning a 128-dimensional latent vector into a 32x32 image. The
# discriminator uses LeakyReLU and a sigmoid output, and the report adjusts the real and fake labels to
# keep the discriminator from becoming over-confident.

# %% tags=["parameters", "remove-cell"]
device = "auto"          # auto | cpu | cuda | cuda:N
dataset = None           # None: the report's dataset (CIFAR-100)
data_root = None         # None: $CIFAR_NB_DATA
steps = None             # None: the budget's 50,000 (the report stopped at 49,998)
batch_size = None        # None: our reading, 128
seeds = [0, 1, 2]
fid_samples = None       # None: 10,000 generated images
results_dir = None       # None: the project's results/
preview = False
full_budget = None       # in a preview: {experiment: [seeds]} shown from finished full-budget runs

# %% tags=["remove-input", "remove-stdout", "remove-stderr", "nbval-ignore-output"]
from cifar_nb.book import chapter, plots, report

P, runs = chapter.start(globals(), "C-generator")

# %% [markdown]
# ## What the report claims

# %%
report.claims_list("C-generator")

# %% [markdown]
# ## Our reading of the network
#
# The report gives the number of layers, the latent size, the activations and the total parameter
# count, but not the channel widths. The widths below are the ones at which this family of networks has
# exactly 595,840 parameters. For the labels, the report says only that the real and fake targets were
# adjusted; we soften both targets towards each other (the `real_label` and `fake_label` entries of the
# recipe table), the common form of that adjustment: a two-sided version of the label smoothing that {cite:t}`salimans2016improved` discuss.

# %% tags=["remove-input"]
report.architecture("C-generator")

# %%
report.recipe(P, "C-generator")

# %% [markdown]
# ## Parameters and budget

# %% tags=["full-width"]
report.budget_table(P, runs)

# %% [markdown]
# ## Training curves
#
# One thin line per seed and the mean ± std band over seeds.

# %% mystnb={"figure": {"caption": "Report C's DCGAN: discriminator and generator losses against step, per seed.", "name": "fig-report-c-generator-1"}}
plots.plot_history(runs["C-generator"], keys=("loss_d", "loss_g"), ylabel="BCE loss",
                   title="Report C DCGAN: losses")

# %% [markdown]
# ## Scores
#
# FID against the CIFAR-100 test set where it can be measured; otherwise the labelled substitutes.

# %% tags=["full-width"]
report.generator_table(P, runs)

# %% tags=["full-width"]
report.claims_table(P, runs)

# %%
report.generator_notes(runs["C-generator"][0])

# %% [markdown]
# ### Sampling mode
#
# Report C does not say in which mode its generator sampled. Its loop has the shape of the PyTorch DCGAN
# tutorial (BCE on a sigmoid output, adjusted real and fake labels), and that tutorial never switches G to
# eval mode, so train mode (each batch's own BatchNorm statistics) is the more
# likely, and the book reads report C's claims in that mode: the scores table above takes each run's train-mode
# scores wherever they have been computed from the saved weights, and its sampling-mode column says which
# mode every number is in. Training itself scores in eval mode (running statistics), where an image depends
# on its latent alone. The table below scores the same weights both ways; a difference larger than the
# spread between seeds would mean that the mode, not the model, decides a verdict.

# %% tags=["full-width"]
report.sampling_modes_table(runs["C-generator"])

# %% [markdown]
# The same comparison on one run cut to 2,000 of the report's 50,000 steps, trained on the chapter's dataset
# with the protocol's FD-cls feature network (`python -m cifar_nb run C-generator --steps 2000 --dataset
# cifar10-jpeg`, then `score` in each mode). It is a reduced budget, labelled as such: it measures how far
# the mode alone moves FD-cls and KID at one checkpoint, not how good the model is; the last column is that
# difference.

# %% tags=["full-width"]
report.sampling_modes_table(report.reduced_runs(P, "C-generator", 2_000))

# %% [markdown]
# ## Samples
#
# A random batch from the first seed, not selected in any way:

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "C-generator, seed 0: random samples, not cherry-picked.", "name": "fig-report-c-generator-2"}}
chapter.show_figure(runs["C-generator"][0], "figure_random")

# %% [markdown]
# The same kind of batch beside real CIFAR-100 images, both at two and a half times their size: the real test images
# are what the report's FID compares with.

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "C-generator, seed 0: generated samples beside real CIFAR-100 test images, at the same scale.", "name": "fig-report-c-generator-3"}}
report.beside_real_cifar100(P, runs["C-generator"][0])

# %% [markdown]
# Linear interpolation between pairs of random latents, as in the report:

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "C-generator, seed 0: interpolations between latent vectors, one row per pair.", "name": "fig-report-c-generator-4"}}
chapter.show_figure(runs["C-generator"][0], "figure_interpolation")

# %% [markdown]
# Samples picked by the stated rule (the report shows none):

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "C-generator, seed 0: cherry-picked samples; the rule that picked them is in the image's title.", "name": "fig-report-c-generator-5"}}
chapter.show_figure(runs["C-generator"][0], "figure_cherry")

# %% [markdown]
# Random samples beside their nearest training images:

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "C-generator, seed 0: random samples (left) and their nearest training images.", "name": "fig-report-c-generator-6"}}
chapter.show_figure(runs["C-generator"][0], "figure_nn")

# %% tags=["remove-input"]
report.verdict_summary(P, runs)

# %% tags=["remove-input", "nbval-ignore-output"]
chapter.finish(P)
