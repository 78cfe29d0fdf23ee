"""Evaluation: PAN-2012 measures, ranking, calibration and early-detection measures, bootstrap
intervals, error analysis, the shortcut audit and figures."""
