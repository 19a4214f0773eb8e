"""Scoring a model on held-out sets (`etr-dist eval`) and the statistics for comparing trained arms.

passk and stats are pure (numpy only); sets, model and runner are orchestration level, like the driver.
"""
