"""The feature store: point-in-time training sets and online features from one definition."""
