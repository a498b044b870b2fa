"""The gradual rollout: assignment of units to arms, the analysis valid under continuous
looking, and the controller that promotes or rolls back on measured outcomes (issue 16).

The package sits below ``serving`` (the service assigns each request and reads the state)
and above ``models`` (the state lives in the registry's database) and ``monitoring`` (it reads
the prediction log the same way).
"""
