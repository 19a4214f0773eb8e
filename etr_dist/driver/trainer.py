"""The step loop: rollouts stream in, the learner trains, weights sync back, metrics and checkpoints go out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from etr_dist.config import to_dataclass
from etr_dist.driver.checkpoint import CheckpointManager, find_checkpoint
from etr_dist.driver.cluster import Cluster
from etr_dist.driver.collector import RolloutCollector, RolloutProducer, StepRollout
from etr_dist.driver.evaluate import evaluate_sets
from etr_dist.driver.groups import accuracy, rollout_metrics
from etr_dist.driver.metrics import MetricsLogger, SkippedUpdateGuard
from etr_dist.faults import injection_point
from etr_dist.learner.batch import build_train_batch
from etr_dist.remote_calls import call_when_back

GRADE_KEY = "cluster.timeouts.grade_s"


class Trainer:
    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        cluster: Cluster,
        on_step_end: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        typed = to_dataclass(cfg)
        self.algorithm = typed.algorithm  # checked once; every step's batch is built with it
        self.on_step_end = on_step_end  # called after each step's weight sync, e.g. to inspect the workers
        self.run_dir = Path(run_dir)
        self.cluster = cluster
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", cfg.trainer.keep_last)
        self.timeouts = typed.cluster.timeouts
        self.collector = RolloutCollector(
            cluster.rollout_workers,
            cluster.grader,
            cluster.weights,
            cluster.train_stream,
            cluster.sampling,
            typed.trainer,
            typed.cluster,
            cfg.rollout.prompts_per_request,
        )
        self.logger: MetricsLogger | None = None  # opened by fit(), once the resume step is known
        self._phases = open(self.run_dir / "phases.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.initial_eval: dict[str, float] = {}
        self._skip_guard = SkippedUpdateGuard(cfg.trainer.max_skipped_steps)

    def fit(self) -> dict[str, float]:
        trainer = self.cfg.trainer
        start_step = self._restore()
        logging_cfg = self.cfg.logging
        self.logger = MetricsLogger(
            self.run_dir, logging_cfg.tensorboard, logging_cfg.progress_bar, trainer.total_steps, start_step
        )
        self._sync(start_step)
        final_eval: dict[str, float] = {}
        if trainer.eval_at_start and start_step == 0:
            self.initial_eval = self._evaluate(0)
            self.logger.log(0, self.initial_eval)
        self._producer = RolloutProducer(
            self.collector, start_step, trainer.total_steps, trainer.max_staleness
        )
        self._producer.start()
        last_step_end: float | None = None
        try:
            for step in range(start_step, trainer.total_steps):
                rollout = self._producer.get(self.collector.timeouts.rollout_s)
                step_start = last_step_end or rollout.started_at
                metrics = self._train_one(step, rollout)
                self._skip_guard.observe(step + 1, metrics)
                metrics["timing_s/step"] = time.time() - step_start  # waiting for rollouts, learning, sync
                done = step + 1
                # logged before the save, so a checkpointed step always has its row (a resume keeps it)
                pass_rates = [g.pass_rate for g in rollout.groups + rollout.filtered]
                self.logger.log(done, metrics, {"reward/pass_rate_hist": pass_rates})
                if _due(done, trainer.save_every, trainer.total_steps):
                    self._save(done)  # before eval: an eval error must not lose the step's checkpoint
                if _due(done, trainer.eval_every, trainer.total_steps):
                    final_eval = self._evaluate(done)
                    self.logger.log(done, final_eval)  # the step's eval row
                    metrics.update(final_eval)
                self.logger.advance(done, metrics)
                if self.on_step_end is not None:
                    self.on_step_end(done, metrics)
                last_step_end = time.time()
        finally:
            self._producer.stop()
            self.logger.close()
            self._phases.close()
        return final_eval

    def _train_one(self, step: int, rollout: StepRollout) -> dict[str, float]:
        oldest_allowed = step - self.cfg.trainer.max_staleness
        fresh = [g for g in rollout.groups if min(c.policy_version for c in g.completions) >= oldest_allowed]
        batch = build_train_batch(
            fresh,
            self.cluster.pad_token_id,
            self.algorithm,
            max_response_len=self.cfg.rollout.max_new_tokens,
        )
        learn_start = time.time()
        metrics = {**batch.metrics, **self.cluster.learner.train_step(batch, step)}
        learn_end = time.time()
        sync = self._sync(step + 1)
        self._producer.set_synced_version(step + 1)
        self._record_phase(step, "gen", rollout.started_at, rollout.finished_at)
        self._record_phase(step, "learn", learn_start, learn_end)
        self._write_samples(step + 1, rollout)
        metrics.update(rollout.stats)
        metrics.update(rollout_metrics(fresh, self.cfg.rollout.max_new_tokens, step))
        metrics.update(sync)
        grader_metrics = call_when_back(  # a grader restarted by the collector may still be coming back
            self.cluster.grader.metrics.remote, "the grader", "metrics", self.timeouts.grade_s, GRADE_KEY
        )
        metrics.update(grader_metrics)
        metrics["reward/accuracy"] = accuracy(rollout.groups + rollout.filtered)
        metrics["sampling/stale_dropped"] = float(len(rollout.groups) - len(fresh))
        metrics["data/skipped_rows"] = float(self.cluster.data_stats.skipped_rows)
        metrics["data/too_long_prompts"] = float(self.cluster.data_stats.too_long_prompts)
        metrics["timing_s/learn"] = learn_end - learn_start
        return metrics

    def _sync(self, version: int) -> dict[str, float]:
        return self.cluster.weights.sync(version).as_metrics()

    def _evaluate(self, step: int) -> dict[str, float]:
        trainer = self.cfg.trainer
        return evaluate_sets(
            self.cluster.rollout_workers,
            self.cluster.grader,
            self.cluster.eval_sets,
            self.cluster.sampling,
            samples=trainer.eval_samples,
            temperature=trainer.eval_temperature,
            out_dir=self.run_dir / "eval" / f"step_{step}",  # per-item rows, for paired statistics
            timeouts=self.timeouts,
        )

    def _save(self, step: int) -> None:
        staging = self.checkpoints.staging_dir(step)
        self.cluster.learner.save_checkpoint(str(staging / "learner"), {"step": step})
        state = {
            "step": step,
            "stream": self.collector.stream_state_for(step),
            "config": OmegaConf.to_container(
                self.cfg, resolve=True
            ),  # a resume checks it (RESUME_FIXED_KEYS)
        }
        injection_point("before_commit", step)  # the learner's files are staged, `latest` not moved yet
        self.checkpoints.commit(step, state)
        injection_point("after_save", step)

    def _restore(self) -> int:
        """The step to start from: 0, or the checkpoint's (prepare_run_dir already checked it is compatible)."""
        resume = self.cfg.trainer.resume
        if resume == "never":
            return 0
        folder = self.checkpoints.latest() if resume == "auto" else find_checkpoint(Path(resume))[1]
        if folder is None:
            return 0
        state = CheckpointManager.driver_state(folder)
        self.cluster.learner.load_checkpoint(str(folder / "learner"))
        self.cluster.train_stream.load_state_dict(state["stream"])
        return int(state["step"])

    def _record_phase(self, step: int, phase: str, start: float, end: float) -> None:
        self._phases.write(json.dumps({"step": step, "phase": phase, "start": start, "end": end}) + "\n")
        self._phases.flush()

    def _write_samples(self, step: int, rollout: StepRollout) -> None:
        keep = self.cfg.logging.samples_per_step
        if keep <= 0:
            return
        with open(self.run_dir / "samples" / f"step_{step}.jsonl", "w", encoding="utf-8") as f:
            tagged = [(g, False) for g in rollout.groups] + [(g, True) for g in rollout.filtered]
            for group, filtered in tagged[:keep]:
                f.write(json.dumps({**group.to_json(), "filtered": filtered}) + "\n")


def _due(done: int, every: int, total: int) -> bool:
    """Every `every` steps and at the end; never when `every` is 0."""
    return every > 0 and (done % every == 0 or done == total)
