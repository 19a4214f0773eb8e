"""Rollout workers: one generation engine (hf, vllm) behind one protocol; importing registers both engines."""

from etr_dist.rollout import hf_engine, vllm_engine  # noqa: F401  (register the engines)
from etr_dist.rollout.engine import ENGINES, GenerationEngine, SamplingSpec, register_engine

__all__ = ["ENGINES", "GenerationEngine", "SamplingSpec", "register_engine"]
