"""The learner group: DeepSpeed ZeRO-3 ranks that compute the RL loss, step, and export weights."""
