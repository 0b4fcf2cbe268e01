"""The engine: how a run is made. Data, augmentation, the training loops, evaluation, artifacts, the
orchestrator (runs.run), the CPU run queue, report D's search and the GPU lease kit.

It imports the spec (cifar_nb.config, budget, experiments, models) and never the book."""
