"""Reporting: the run report (and, later, the model card) rendered from evaluation outputs."""
