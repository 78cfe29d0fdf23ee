"""Features: text views and (later) behavioural features built from the canonical tables."""
