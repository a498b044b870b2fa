"""Data access: sources (Arrow out), contracts and validation, freshness, access checks."""
