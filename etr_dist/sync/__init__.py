"""Weight sync from the learner group to the rollout workers: bucketing, transports, broadcast groups."""
