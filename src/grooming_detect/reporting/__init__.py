"""Reporting: the run report, the model card and the ethics card rendered from evaluation
outputs, the results table, and the notebooks' helpers."""
