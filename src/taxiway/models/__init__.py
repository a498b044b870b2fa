"""Models: training against a baseline, the fast serving form, the registry and the audit."""
