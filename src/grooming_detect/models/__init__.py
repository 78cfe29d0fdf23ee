"""Models: the scikit-learn baselines, the two-stage PAN-2012 design and fine-tuned
transformers; the decisions fitted after them (calibration, threshold; holdout or crossfit);
persistence, the shared scoring code, exact message-by-message scores and the served pyfunc."""
