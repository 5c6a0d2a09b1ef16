"""Evals: datasets, targets, the runner that runs, traces and records an eval, judges, diffs
and regressions, the scheduler and production judging."""
