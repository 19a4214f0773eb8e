"""`python -m etr_dist.train [overrides...]`: validate the config first (fast), then start the job."""

from __future__ import annotations

import sys

from etr_dist.config import ConfigError, compose_config, to_dataclass
from etr_dist.config.checks import inert_trust_region_warning
from etr_dist.driver.run_dir import prepare_run_dir


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in overrides):
        print(
            "usage: python -m etr_dist.train [group=option ...] [key.path=value ...]  (Hydra-style overrides)"
        )
        print(
            "groups: algorithm, model, data, rollout, learner, sync, cluster, logging; see configs/ and docs/"
        )
        return 0
    try:
        cfg = compose_config(overrides)
    except ConfigError as err:
        print(f"etr_dist: config error: {err}", file=sys.stderr)
        return 2
    warning = inert_trust_region_warning(to_dataclass(cfg))
    if warning:
        print(f"etr_dist: warning: {warning}", file=sys.stderr, flush=True)
    if cfg.reward.fn:
        from etr_dist.reward.custom import load_reward_fn

        try:
            load_reward_fn(cfg.reward.fn)
        except (ImportError, ValueError) as err:
            print(f"etr_dist: config error: {err}", file=sys.stderr)
            return 2
    try:
        run_dir = prepare_run_dir(cfg)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"etr_dist: error: {err}", file=sys.stderr)
        return 2
    print((run_dir / "config.yaml").read_text(), flush=True)
    print(f"run folder: {run_dir}", flush=True)
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}", flush=True)

    from etr_dist.driver.cluster import build_cluster, connect
    from etr_dist.driver.trainer import Trainer

    connect(cfg.cluster)
    cluster = build_cluster(cfg)
    trainer = Trainer(cfg, run_dir, cluster)
    try:
        final_eval = trainer.fit()
    finally:
        cluster.shutdown()
    for name, value in sorted(final_eval.items()):
        print(f"{name}: {value:.4f}", flush=True)
    print(f"run folder: {run_dir}", flush=True)
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}", flush=True)
    accuracy = f"eval/{cfg.data.source}/pass@1"
    if accuracy in trainer.initial_eval and accuracy in final_eval:
        print(
            f"held-out accuracy: {trainer.initial_eval[accuracy]:.3f} -> {final_eval[accuracy]:.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
