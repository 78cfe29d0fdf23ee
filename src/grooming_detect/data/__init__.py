"""Data: the official PAN-2012 files, the synthetic PAN-format corpus, splits and canonical tables."""
