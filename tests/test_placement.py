"""Role placement on a real local Ray cluster whose processes may all see two (fake) GPUs, as on a GPU node."""

import os

import pytest
import ray

from etr_dist.config.checks import ConfigError, parse_resources
from etr_dist.config.schema import RolePlacement
from etr_dist.placement import PlacementError, actor_options, place_role, role_bundle

RAY_ENV_VARS = {"CUDA_VISIBLE_DEVICES": "0,1"}  # what a GPU node's processes see unless Ray narrows it


@ray.remote
class Probe:
    def visible_gpus(self) -> str | None:
        import torch

        assert not torch.cuda.is_available()
        return os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.slow
def test_an_actor_that_asked_for_no_gpu_sees_none(local_ray):
    plain = Probe.options(num_cpus=0.1).remote()
    assert ray.get(plain.visible_gpus.remote()) == "0,1"  # Ray leaves every GPU visible to it
    placed = Probe.options(**actor_options(0.1, 0, None, 0)).remote()
    assert ray.get(placed.visible_gpus.remote()) == ""


def test_bundles_carry_the_roles_resources_and_leave_zeros_out():
    placement = RolePlacement("SPREAD", ["rollout_node:1", "a100:0.5"])
    assert role_bundle(2.0, 0.0, placement, "rollout") == {"CPU": 2.0, "rollout_node": 1.0, "a100": 0.5}
    assert parse_resources([], "k") == {}
    for bad in (["rollout_node"], ["x:0"], ["GPU:1"], [":1"]):
        with pytest.raises(ConfigError, match="cluster.roles.rollout.resources"):
            parse_resources(bad, "cluster.roles.rollout.resources")


@pytest.mark.slow
def test_a_role_the_cluster_cannot_place_fails_naming_it_and_leaves_no_group(local_ray):
    # no node has the resource (or a GPU): refused at once, without waiting for the deadline
    with pytest.raises(PlacementError, match=r"grader role can never be placed.*'grader_node': 1.0"):
        place_role("grader", 1, 1.0, 0.0, RolePlacement("PACK", ["grader_node:1"]), timeout_s=600)
    with pytest.raises(PlacementError, match=r"learner role can never be placed.*'GPU': 1.0"):
        place_role("learner", 2, 1.0, 1.0, RolePlacement("PACK"), timeout_s=600)
    # each bundle fits the node, all of them do not: refused at the deadline
    with pytest.raises(PlacementError, match=r"rollout role within 2 s.*3 bundle\(s\) of \{'CPU': 4.0\}"):
        place_role("rollout", 3, 4.0, 0.0, RolePlacement("STRICT_PACK"), timeout_s=2)
    assert all(g["state"] == "REMOVED" for g in ray.util.placement_group_table().values())
    group = place_role("learner", 2, 1.0, 0.0, RolePlacement("STRICT_PACK"), timeout_s=30)
    assert ray.get(Probe.options(**actor_options(1.0, 0, group, 1)).remote().visible_gpus.remote()) == ""
    group.remove()
