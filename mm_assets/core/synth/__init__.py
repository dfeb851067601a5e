"""Programmatic synthetic data with exact answers (analog clocks, counting with pointing,
charts with known data).

Dagster-free: :mod:`spec` (YAML specs and where they live), :mod:`generate` (seeded per-sample
rendering, the checker, answer distributions), one module per generator.
"""
