"""The library under src/'s scripts. Its folders are its layers, each importing only from those
below it (tests/test_shape.py holds the code to it; docs/architecture.md says what each module owns):

    experiments   what a command does from end to end: a sweep, a paper figure, a benchmark, baselines regenerated
    analysis      reading records into tables, statistics, figures, pages and exports (no torch)
    training      one run, or many stacked: flags, setup, the loop, optimizers, workloads
    (model.py)    the models, in src/model.py (the repository's fixed shape keeps them there)
    data          the datasets and their loaders
    records       run records on disk (store) and what they mean (meaning)
    core          one-line errors and exit codes, flag types, provenance
"""
