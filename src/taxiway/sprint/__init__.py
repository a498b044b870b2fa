"""The sprint: the four phases end to end, blockers, the debrief, readiness and runbooks."""
