"""The prediction service: a guarded HTTP API in front of a registered model."""
