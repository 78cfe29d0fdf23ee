"""Evaluation: PAN-2012 measures, threshold tuning and figures."""
