"""etr_dist: Ray-distributed RLVR trainer with Elastic Trust Regions."""

__version__ = "0.1.0"
