"""Models: scikit-learn baselines (and, later, the two-stage design and transformers)."""
