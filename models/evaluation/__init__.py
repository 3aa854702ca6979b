"""Offline quality of every stage on the evaluation protocol (`python -m models.evaluation`).

The metrics and the protocol themselves live in `models.metrics`.
"""
