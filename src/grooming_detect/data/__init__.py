"""Data: official PAN-2012 files, the synthetic PAN-format corpus, splits, canonical tables."""
