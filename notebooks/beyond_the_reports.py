# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (cifar-nb)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Beyond the reports: our own classifier and generator under the same rules
#
# The five reports answer one question each: how well does *their* recipe do under the budget. None
# answers the question a reader of all five is left with: how good can a model be under these rules, at
# most 100,000 parameters and 10,000 steps for a classifier, and at most 1,000,000 parameters (generator
# and discriminator together) and 50,000 steps for a generator? This chapter adds one recipe of ours for
# each, trains it under exactly the protocol the report chapters use, and sets it beside every report on
# the same data. Both are registered beside the report experiments as `ours-classifier` and
# `ours-generator`; they have no claims, so there is nothing to audit, only something to measure.

# %% tags=["parameters", "remove-cell"]
device = "auto"          # auto | cpu | cuda | cuda:N
dataset = None           # None: each experiment's own dataset (CIFAR-100)
data_root = None         # None: $CIFAR_NB_DATA
steps = None             # None: the budgets' 10,000 (classifier) and 50,000 (generator)
batch_size = None        # None: the recipes' 256 (classifier) and 128 (generator)
seeds = [0, 1, 2]
fid_samples = None       # None: 10,000 generated images
results_dir = None       # None: the project's results/
preview = False
full_budget = None       # in a preview: {experiment: [seeds]} shown from finished full-budget runs

# %% tags=["remove-input", "remove-stdout", "remove-stderr", "nbval-ignore-output"]
from cifar_nb import ablations
from cifar_nb.book import beyond, chapter, plots, report

P, runs = chapter.start(globals(), "ours-classifier", "ours-generator", "C-generator")

# %% [markdown]
# ## The classifier: what we chose, and why
#
# The budget that binds a 100,000-parameter network trained for 10,000 steps is not its parameters but the
# number of images it sees (51 epochs at batch 256) and, on our machines, its cost per step. Our network
# is a small residual CNN {cite:p}`he2016resnet` that spends its arithmetic where the pixels are and its
# parameters where the channels are: narrow convolutions at full and half resolution, wider ones at 8x8 and
# 4x4, max-pooling between stages, identity shortcuts, and after the global pool one hidden layer of 128 units
# before the classifier. That last layer first sat before the pool, as a 1x1 convolution at every place; after
# the pool, with the same weights, its nonlinearity sees the whole image at once and can combine what was found
# in different places, which AddNIST's labels (a sum over three digits) need. Its recipe takes the ideas of airbench {cite:p}`jordan2024airbench`, which reaches 94 % on CIFAR-10 in seconds, and
# fits them to our budget:
#
# - the first convolution starts from the whitening of 3x3 image patches, computed from training images, so
#   the network does not spend its first steps learning to decorrelate pixels {cite:p}`jordan2024airbench`;
# - Nesterov momentum SGD {cite:p}`sutskever2013momentum` with a short warm-up and a linear decay
#   (a one-cycle schedule {cite:p}`smith2019superconvergence`), and residual branches whose last BatchNorm
#   {cite:p}`ioffe2015batchnorm` starts at zero, so each block starts as the identity {cite:p}`goyal2017accurate`;
# - label smoothing {cite:p}`szegedy2016inception,muller2019labelsmoothing` and GELU activations {cite:p}`hendrycks2016gelu`;
# - an exponential moving average of the weights, which is what is evaluated and saved {cite:p}`polyak1992averaging`;
# - 2-pixel translations, and mirror flips with flip test-time augmentation only where a mirror image keeps
#   its label: on natural images, not on AddNIST's digits. On AddNIST the translations give way to report E's
#   random turns, shifts, rescalings and shears of each image, which handwritten digits survive legibly; that change came last, and only after a split held out of training and of scoring said so (the
#   ablations below);
# - on AddNIST, the one symmetry its labels have: a label is the sum of the digits in the three colour
#   channels {cite:p}`geada2024addnist`, so every order of the channels has the same label. Each training
#   image gets its channels in a random order, and the evaluated prediction averages the six orders, as flip
#   test-time augmentation averages an image and its mirror: a model that has to learn a symmetry is better
#   off seeing it in the data and being asked for it at test time {cite:p}`chen2020group`. Both switch on from
#   what the dataset declares about its labels, not from its name; on photographs the recipe is unchanged.
#
# The model's own description, with its parameter count per dataset and its cost beside the reports'
# networks:

# %% tags=["remove-input"]
report.architecture("ours-classifier")

# %%
report.recipe(P, "ours-classifier")

# %% [markdown]
# ## The generator: what we chose, and why
#
# A GAN of under a million parameters trained on 50,000 images runs into one limit before any other: its
# discriminator over-fits the training images within a few epochs, and its gradients then stop helping the
# generator. Our generator is report C's DCGAN {cite:p}`radford2016dcgan` as that chapter runs it: the same
# network (595,840 parameters for G and D together), optimiser, batch of 128, label values and flips. Only two
# things are added, both remedies for that limit, so that the comparison with report C isolates them:
#
# - differentiable augmentation, random translations and cutout, on every image the discriminator sees, real and
#   generated, in both updates {cite:p}`zhao2020diffaugment`: the discriminator cannot memorise what it never
#   sees twice, and since the generator's images pass through the same augmentation, the generator is not
#   pushed to produce augmented images;
# - an exponential moving average of the generator's weights (decay 0.999), which is what is sampled and scored
#   {cite:p}`yazici2019ema`: it smooths the oscillation of the two-player game.
#
# Both leave the network and its convolutions as they are: a step costs what report C's step costs, plus
# DiffAugment's elementwise work. We chose the two from short runs, where they helped a great deal; at full
# budget this recipe collapsed at seed 0 and ended level with report C's DCGAN at seed 1, as the ablations and the
# targets below show, so this is the design we measured, not yet one we recommend.
#
# Our first design was more ambitious and did worse: a DCGAN-shaped generator with a narrower, spectrally
# normalised discriminator {cite:p}`miyato2018spectral` trained with the hinge loss {cite:p}`lim2017geometric`,
# colour augmentation as well, at batch 64. Its full-budget run is kept as an ablation below, with the curve
# that shows what went wrong.

# %%
report.recipe(P, "ours-generator")

# %% [markdown]
# ## Parameters and budget

# %% tags=["full-width"]
report.budget_table(P, runs)

# %% [markdown]
# ## Side by side with every report, on the same data
#
# Each table lists every recipe, ours and the reports', that has full-budget runs on one dataset: the same
# data, budget and evaluation for every row. The reports' own CIFAR-100 claims are not in these tables,
# because none of these runs is on CIFAR-100; the report chapters set them beside our re-runs. A row of ours
# without runs says what is still to come.

# %% tags=["full-width"]
beyond.side_by_side("classifier", "addnist")

# %% tags=["full-width"]
beyond.side_by_side("classifier", "cifar10-jpeg")

# %% tags=["full-width"]
beyond.side_by_side("gan", "cifar10-jpeg")

# %% [markdown]
# ## Against the targets we set
#
# Before training them we gave both models targets: on AddNIST, above report E's claim by a clear margin; on
# the stand-in, above every report recipe run there; and for the generator, a clear step past report C's DCGAN.
# The table reads them against the full-budget runs.

# %% tags=["full-width"]
beyond.targets_table()

# %% [markdown]
# ## Which parts of the generator recipe matter
#
# Each variant changes one piece of the recipe; the last is our first design, a different network and loss,
# rebuilt field by field from the recipe. First at a reduced budget, then what has been run at full budget.

# %% tags=["full-width"]
beyond.ablation_table("ours-generator", 5_000, "cifar10-jpeg",
                      only=["no G weight EMA", ablations.NO_DIFFAUGMENT, ablations.FIRST_GAN_DESIGN])

# %% [markdown]
# At this budget DiffAugment is what matters: without it, report C's discriminator is left to memorise the
# training images, and the score is far worse. The EMA of the generator's weights does not help yet: with decay
# 0.999 the average still carries a noticeable share of the first thousands of steps, whose generator was poor.
# The full budget, below, shows that a short run is no guide to which additions help: the recipe that led at
# 5,000 steps collapsed at 50,000.

# %% tags=["full-width"]
beyond.ablation_table("ours-generator", 50_000, "cifar10-jpeg", seeds=(0, 1, 2),
                      only=beyond.GAN_VARIANTS_AT_FULL_BUDGET)

# %% [markdown]
# What the average of the generator's weights adds at full budget needs no run of its own: each full-budget run
# keeps its trained generator beside the average, and the two are scored from the same number of images.

# %% tags=["full-width"]
beyond.weight_average_table("ours-generator", "cifar10-jpeg",
                            variants=(ablations.FULL_RECIPE, *beyond.GAN_VARIANTS_AT_FULL_BUDGET))

# %% [markdown]
# At full budget and seed 0 the recipe did far worse than at 5,000 steps, and far worse than report C's DCGAN
# without either addition (the side-by-side table above). The curves below say what happened: from about a quarter of
# the way in, the seed-0 discriminator's mean output on real and generated images sat for long stretches at the
# label values it is trained towards, 0.9 and 0.1 (seed 1's stays short of them), so it told the two apart almost perfectly even through the
# augmentation, and the generator collapsed onto a few textures that repeat across its samples (the grid further
# down). Averaging its weights did not rescue it: both the average and the live weights score badly.
#
# The variants run at full budget (the two tables above) say where the collapse comes from:
#
# - without DiffAugment, that is report C's recipe with the weight average, the run did not collapse. It scored
#   close to report C's own run, and its weight average scored a little better than its live weights: on a run
#   that trains well, the average is worth keeping;
# - with DiffAugment kept and the discriminator's learning rate halved, the run did not collapse either, but it
#   ended behind the run without DiffAugment in FD-cls, and level with it in KID. Slowing the discriminator is
#   what rescues the augmented run, which says that the augmented discriminator overpowered the generator, rather
#   than memorised the training images. Here the weight average helps clearly;
# - with DiffAugment kept and the labels set to 1 and 0 instead of report C's 0.9 and 0.1, the run did not
#   collapse either, and it is the best generator of ours in both FD-cls and KID, ahead of report C's run by more
#   than the gap between two runs of the same training (below), though still short of the target we set.
#
# So DiffAugment does not break report C's discriminator on its own: it collapses the run together with report
# C's label values and its full learning rate, and changing either one is enough for the run to train. Going back
# to labels 1 and 0 is the change that helps most; report C's values smooth the label of generated images as well
# as that of real ones, which Salimans et al. advise against {cite:p}`salimans2016improved`, and this one run does
# not say which of the two smoothings does the harm. Each row of the first feature network is one run at seed 0,
# and a gap of a few FD-cls points between two rows is within what a second run of the same training moves:
# report C's run (the side-by-side table) and our run without DiffAugment train the same generator, one in fp32
# and one in bf16, and their final weights score a few points apart (the live-weights column). Which recipe is
# best at full budget is a question for three seeds of each, which the GPU queue holds; until then the registered
# recipe stays the one we set out with, and its variants are not chosen on the test split they are scored on.
#
# The variant with labels 1/0 has a second run, at seed 1, and so have the recipe and report C's DCGAN. Every other
# FD-cls and KID in this chapter was measured in a feature network whose weights git did not keep, and they were
# lost; retraining it on the same machine from the same code gave a different network (the methods appendix says
# more). The three seed-1 runs are scored in the replacement, named in the tables' last column: they compare with
# each other, not with the seed-0 runs, and each change from the recipe is taken within one network. In the new
# network the variant is
# again ahead of report C's DCGAN in both FD-cls and KID (the side-by-side table above for C, the full-budget
# ablation table for the variant), but by less than at seed 0, a margin within what a second run of the same
# training moves. So two seeds, each in its own network, put the two in the same order, and neither comes near
# the target of 70 % of report C's FD-cls. What does not depend on the feature network agrees with seed 0 as well:
# the discriminator trained towards 1 and 0 did not pin there at either seed (the second figure below), and its
# samples do not repeat a few textures as the collapsed recipe's do (the last figures of the chapter). One more
# thing can be read within the new network alone: at seed 1 the weight average scored worse than the live
# weights, by about as much as it scored better at seed 0 (the weight-average table), so for this variant the
# average's worth is within the spread between seeds. The recipe's seed-1 run, below, shows the same sign and
# more: its live weights score about 5 FD-cls points better than its average. Both runs in the new network say
# the average of the last few thousand steps costs a run that trains well, where it helped at seed 0; the decay
# of 0.999 is a choice the GPU queue's seeds should revisit.
#
# The recipe's own run at seed 1 did not collapse. Its discriminator came within 0.02 of both of its targets at 4
# of the 75 logged points after step 13,000, against 40 of 75 at seed 0, and it ended level with report C's DCGAN
# in FD-cls and a little ahead in KID, and behind the variant with labels 1/0 at the same seed. Before it finished
# we had written down what it would decide: a second collapse (the discriminator that close to its targets at a
# third of those points, and an FD-cls more than twice the variant's) would make labels 1/0 the recipe. It did not
# collapse, so the registered recipe stays, and its collapse at seed 0 reads as a risk of report C's label values
# together with DiffAugment, not a certainty. Labels 1/0 are ahead at both seeds, which is what the GPU queue's
# three seeds of each will have to confirm before they replace report C's values.

# %% mystnb={"figure": {"caption": "ours-generator, full budget on the stand-in: the discriminator's mean sigmoid output on real (d_real) and generated (d_fake) images per logged step; 0.9 and 0.1 are its training targets. One thin line per seed (0 and 1); the thick line and band are their mean ± sample std.", "name": "fig-beyond-d-outputs"}}
plots.plot_history(runs["ours-generator"], keys=("d_real", "d_fake"), ylabel="mean D(x)",
                   title="ours-generator: discriminator outputs")

# %% [markdown]
# The variants run at full budget show which change keeps the discriminator from pinning. Each curve is one
# variant's mean output on generated images; the recipe and the variants with report C's labels are trained
# towards 0.1 there, the variant with labels 1/0 towards 0.

# %% mystnb={"figure": {"caption": "ours-generator and its full-budget variants on the stand-in: the discriminator's mean sigmoid output on generated images, per logged step. One thin line per seed; where a variant has two seeds or more, the thick line and band are their mean ± sample std.", "name": "fig-beyond-d-fake-variants"}}
plots.plot_comparison({label: found for label, found in beyond.ablation_runs(
    "ours-generator", 50_000, "cifar10-jpeg", seeds=(0, 1, 2), only=beyond.GAN_VARIANTS_WITH_SIGMOID_D).items()
    if found},
    key="d_fake", ylabel="mean D(G(z))", title="ours-generator variants: D on generated images")

# %% [markdown]
# The first design's curve says why it failed. Its discriminator's hinge loss climbed within the first thousand
# steps towards 2, the loss of a discriminator that gives every image the same score, and stayed there: a
# discriminator this narrow (16 to 192 channels) with every layer spectrally normalised, shown only augmented
# images, stopped telling real from generated, and the generator was left without a useful signal. Report C's
# discriminator, with BatchNorm and no spectral normalisation, keeps telling them apart.

# %% mystnb={"figure": {"caption": "ours-generator's first design (SN discriminator, hinge loss), full budget: the discriminator's hinge loss (2 = it scores real and generated images alike) and the generator's loss, per logged step.", "name": "fig-beyond-d-loss"}}
plots.plot_history(beyond.ablation_runs("ours-generator", 50_000, "cifar10-jpeg",
                                        only=[ablations.FIRST_GAN_DESIGN])[ablations.FIRST_GAN_DESIGN],
                   keys=("loss_d", "loss_g"), ylabel="loss", title="first design: hinge losses")

# %% [markdown]
# ## Which parts of the classifier recipe matter
#
# Each variant takes one piece out of the recipe and trains on the CIFAR-10 JPEG stand-in at a reduced
# budget, labelled as such in the table. A difference smaller than the spread between seeds (see the
# side-by-side tables) is not an effect.

# %% tags=["full-width"]
beyond.ablation_table("ours-classifier", 2_000, "cifar10-jpeg")

# %% [markdown]
# At this budget only test-time augmentation moves the stand-in's score by a full point. Each other piece moves it
# by less than a point either way, and without the whitening stem or the weight average the score is even a
# little higher: at 2,000 steps and one seed, we cannot say that those pieces help.

# %% [markdown]
# On AddNIST three changes to the recipe were in question: the head after the pool; the channel symmetry
# (shuffled channels in training, the six orders averaged at test); and report E's geometric augmentation, which
# turns, shifts, scales and shears every image at random in place of our shifts of two pixels, and which report
# E's own recipe, run here, rides to a higher score than ours did (the side-by-side table). All three were
# measured on the recipe as it stood before the last of them joined it, with the crop on AddNIST too, and the
# tables say so: the same reduced budget first, then the full budget, where "first recipe" is the one this
# chapter first ran, without the first two.

# %% tags=["full-width"]
beyond.ablation_table("ours-classifier", 2_000, "addnist", base=ablations.BEFORE_E_AFFINE, only=[
    "no test-time augmentation", "expansion before the pool (at every place)", "no channel shuffling",
    "no channel symmetries (shuffling, test-time orders)", ablations.E_AFFINE])

# %% tags=["full-width"]
beyond.ablation_table("ours-classifier", 10_000, "addnist", seeds=(0, 1, 2), base=ablations.BEFORE_E_AFFINE, only=[
    "expansion before the pool (at every place)", "first recipe (expansion before the pool, no channel symmetries)",
    ablations.E_AFFINE])

# %% [markdown]
# Report E's augmentation is the one change that pays at full budget. At 2,000 steps it costs points: the network
# has not yet learnt to read digits that are turned and sheared, and it fits the augmented training images no
# better than the test images. By the end of the run it is ahead of the recipe by more than the spread between
# seeds, and level with report E's own recipe run here (the side-by-side table), with a network of
# fewer parameters; the 96 % target stays out of reach. That made it a candidate for the recipe rather than the
# recipe: we saw it help on the test split it is scored on, and the registered recipe changes only where a split
# held out of training and of scoring says so.
#
# AddNIST comes with such a split: 15,000 images of its own, apart from the training and test images. Every
# full-budget run of the recipe and of the variant is evaluated on it again from its saved weights, exactly as its
# training evaluated the test split (the weight average, the six channel orders), and the variant passes only if
# it is ahead at every seed.

# %% tags=["full-width"]
beyond.validation_table("ours-classifier", "addnist", ablations.E_AFFINE, base=ablations.BEFORE_E_AFFINE)

# %% [markdown]
# The variant is ahead on the validation split at all three seeds, by about as much as on the test split, so report
# E's augmentation is now our recipe on AddNIST, and on AddNIST only: photographs keep the crop. Its three
# full-budget runs are the recipe's AddNIST runs in the side-by-side and target tables above, and the crop is
# the variant in the table below. The weights of the earlier recipe's seeds 0 and 1 had not been kept; they were
# trained again from the same configs and came out byte for byte the same (their sha256 is the one each run
# recorded), so every validation score is that of the very network whose test accuracy the tables show. The
# validation split confirmed one change we had already seen help; it chose nothing among many, so it stays a
# held-out check and not a tuning set. With it our classifier matches report E's own recipe on AddNIST, within
# the spread between seeds, and the 96 % target remains out of reach.

# %% tags=["full-width"]
beyond.ablation_table("ours-classifier", 10_000, "addnist", seeds=(0, 1, 2), only=[ablations.CROP])

# %% [markdown]
# And at full budget on the stand-in, where the channel symmetry changes nothing, the head alone:

# %% tags=["full-width"]
beyond.ablation_table("ours-classifier", 10_000, "cifar10-jpeg", seeds=(0, 1, 2),
                      only=["expansion before the pool (at every place)"])

# %% [markdown]
# ## This execution's runs

# %% mystnb={"figure": {"caption": "Our classifier in this execution: accuracy against step. One thin line per seed; with two seeds or more, the thick line and band are their mean ± sample std.", "name": "fig-beyond-1"}}
plots.plot_history(runs["ours-classifier"], keys=("train_acc", "test_acc"), ylabel="accuracy",
                   title="ours-classifier: accuracy")

# %% tags=["full-width"]
report.generator_table(P, {n: runs[n] for n in ("ours-generator", "C-generator")})

# %% [markdown]
# Random samples of our generator (from the average of its weights) beside report C's DCGAN trained in the
# same execution, neither selected in any way:

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "ours-generator, seed 0: random samples from the EMA generator, not cherry-picked.", "name": "fig-beyond-2"}}
chapter.show_figure(runs["ours-generator"][0], "figure_random")

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "C-generator, seed 0, from the same execution: random samples, not cherry-picked.", "name": "fig-beyond-3"}}
chapter.show_figure(runs["C-generator"][0], "figure_random")

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "ours-generator, seed 0: generated samples beside real CIFAR-100 test images, at the same scale.", "name": "fig-beyond-4"}}
report.beside_real_cifar100(P, runs["ours-generator"][0])

# %% [markdown]
# The variant with labels 1/0, our best generator so far, at its newest seed:

# %% tags=["nbval-ignore-output"] mystnb={"figure": {"caption": "ours-generator with labels 1/0 (no label smoothing), full budget on the stand-in, its latest seed: random samples from the EMA generator, not cherry-picked, beside real CIFAR-100 test images at the same scale.", "name": "fig-beyond-labels-samples"}}
report.beside_real_cifar100(P, beyond.ablation_runs("ours-generator", 50_000, "cifar10-jpeg", seeds=(0, 1, 2),
                                                    only=["labels 1/0 (no label smoothing)"])
                            ["labels 1/0 (no label smoothing)"][-1])

# %% [markdown]
# ## Measuring both on CIFAR-100, with real FID
#
# Where the full CIFAR-100 and torch-fidelity's Inception weights are at hand (see the methods appendix),
# one command trains both of our models at full budget on CIFAR-100, three seeds each (and report C's DCGAN
# beside them), scores the generators with FID against the CIFAR-100 test set at the end of training, and
# renders this chapter from those runs:
#
# ```bash
# python -m cifar_nb execute --notebooks beyond_the_reports --device cuda
# ```
#
# A generator trained before the weights were at hand gets FID from its saved weights, without
# retraining: `python -m cifar_nb score ours-generator --seed 0 --fid-weights <weights file>`.

# %% tags=["remove-input", "nbval-ignore-output"]
chapter.finish(P)
