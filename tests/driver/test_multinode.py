"""The system on several Ray nodes: Ray's own multi-node harness (ray.cluster_utils.Cluster) starts a raylet per
node on this machine, each on its own loopback address, so an address that only works on one host shows.

Layout: the head (driver and grader), node A (2 learner ranks), nodes B and C (rollout workers; C with room for
one more), each role pinned by a custom resource and placed in its own placement group.
"""

import json
from pathlib import Path

import pytest
import ray
import torch
from ray.cluster_utils import Cluster

from etr_dist.config import compose_config
from etr_dist.placement import PlacementError

pytestmark = pytest.mark.slow

HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
}
STEPS = 4


@pytest.fixture(scope="module")
def nodes():
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 3, "resources": {"head_node": 1}, "_system_config": HEALTH},
    )
    learner_node = cluster.add_node(num_cpus=2, resources={"learner_node": 2}, node_ip_address="127.0.0.2")
    node_b = cluster.add_node(num_cpus=1, resources={"rollout_node": 1}, node_ip_address="127.0.0.3")
    cluster.add_node(num_cpus=2, resources={"rollout_node": 2}, node_ip_address="127.0.0.4")
    ray.init(address=cluster.address, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield cluster, learner_node, node_b
    ray.shutdown()
    cluster.shutdown()
    Path("/tmp/ray/ray_current_cluster").unlink(
        missing_ok=True
    )  # written by the harness; later ray.init() would join


def config(tmp_path: Path, *extra: str):
    return compose_config(
        [
            f"cluster.address={ray.get_runtime_context().gcs_address}",
            "cluster.num_cpus=null",
            "cluster.roles.grader.resources=[head_node:1]",
            "cluster.roles.learner.resources=[learner_node:1]",
            "cluster.roles.learner.strategy=STRICT_PACK",
            "cluster.roles.rollout.resources=[rollout_node:1]",
            "cluster.roles.rollout.strategy=SPREAD",
            "cluster.timeouts.placement_s=10",
            "learner.num_ranks=2",
            "learner.num_cpus_per_rank=1",
            "learner.ppo_mini_batches=1",
            "rollout.num_workers=2",
            "rollout.num_cpus_per_worker=1",
            "rollout.group_size=4",
            "rollout.prompts_per_request=1",  # 4 requests a step: both workers get some
            "rollout.max_new_tokens=8",
            "trainer.prompts_per_step=4",
            f"trainer.total_steps={STEPS}",
            "trainer.max_staleness=0",  # step 3 is generated after node B is gone, so its loss is felt
            f"trainer.run_dir={tmp_path / 'run'}",
            f"model.cache_dir={tmp_path.parent / 'model-cache'}",
            "reward.num_workers=1",
            "logging.progress_bar=false",
            *extra,
        ]
    )


def actor_nodes() -> dict[str, list[str]]:
    """The node address of every live actor, by class."""
    by_class: dict[str, list[str]] = {}
    for actor in ray._private.state.actors().values():
        if actor["State"] == "ALIVE":
            by_class.setdefault(actor["ActorClassName"], []).append(actor["Address"]["IPAddress"])
    return {name: sorted(ips) for name, ips in by_class.items()}


def test_a_layout_the_cluster_cannot_fit_fails_within_its_deadline_naming_the_role(nodes, tmp_path):
    from etr_dist.driver.cluster import build_cluster

    cfg = config(tmp_path, "learner.num_ranks=3")  # node A carries 2 learner_node
    with pytest.raises(PlacementError, match=r"learner role within 10 s.*3 bundle\(s\).*learner_node"):
        build_cluster(cfg)
    assert all(group["state"] == "REMOVED" for group in ray.util.placement_group_table().values())


def test_roles_run_on_their_nodes_sync_exactly_and_survive_losing_a_rollout_node(nodes, tmp_path):
    """3 roles on 4 nodes; after every sync each worker holds the learner's weights exactly; node B is then
    removed without warning mid-run, its worker is restarted on node C, and every step trains once."""
    from etr_dist.driver.cluster import build_cluster
    from etr_dist.driver.run_dir import prepare_run_dir
    from etr_dist.driver.trainer import Trainer

    cluster, _, node_b = nodes
    cfg = config(tmp_path)
    run_dir = prepare_run_dir(cfg)
    roles = build_cluster(cfg)
    placed = actor_nodes()
    assert placed["LearnerActor"] == ["127.0.0.2", "127.0.0.2"]
    assert placed["RolloutActor"] == ["127.0.0.3", "127.0.0.4"]  # SPREAD over B and C
    assert placed["GraderActor"] == [ray.util.get_node_ip_address()]
    synced, placed_at_end = [], {}

    def after_sync(step: int, metrics: dict[str, float]) -> None:
        if (
            step != 3
        ):  # every worker holds the learner's weights exactly (step 3's sync may find one restarting)
            learner = roles.learner.gathered_state_dict()
            for worker in roles.rollout_workers:
                for name, tensor in ray.get(worker.get_weights.remote()).items():
                    torch.testing.assert_close(tensor, learner[name], rtol=0, atol=0, msg=name)
            synced.append(step)
        if step == 2:
            cluster.remove_node(node_b, allow_graceful=False)  # a node lost mid-run, seen by health checks
        if step == STEPS:
            placed_at_end.update(actor_nodes())

    try:
        Trainer(cfg, run_dir, roles, on_step_end=after_sync).fit()
    finally:
        roles.shutdown()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert synced == [1, 2, 4] and [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert rows[-1]["fault/actor_restarts"] >= 1
    assert placed_at_end["RolloutActor"] == ["127.0.0.4", "127.0.0.4"]  # node B's worker restarted on node C
