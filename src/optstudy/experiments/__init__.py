"""Commands from end to end: a sweep, a paper figure, a benchmark, baselines regenerated."""
