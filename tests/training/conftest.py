"""Tests of the offline side: real LightGBM models trained on small real data, the training CLI, and the
demo's simulation and report. Slower than the logic tests on fakes in ``tests/unit``; no moto."""
