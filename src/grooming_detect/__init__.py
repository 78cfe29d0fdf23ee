"""grooming-detect: reproducible chat-grooming risk classifiers on PAN-2012 and chat logs."""

__version__ = "0.1.0"
