"""Monitoring of a served model: drift, latency and quality over its prediction log.

Today the package holds only the drift statistics (``statistics/``): one module per
statistic behind one protocol. The monitor that reads the log, the calibrated thresholds and
the alerts are not built yet (docs/plan-monitoring.md). The package sits below ``serving``
and never imports ``serving``, ``sprint`` or ``cli``.
"""
