"""One placement group per role (learner ranks, rollout workers, the grader), placed within a deadline.

A bundle per actor holds its CPUs, GPUs and the role's custom resources (cluster.roles.<role>.resources), so a
role lands only on nodes that carry them; the strategy (PACK, SPREAD, ...) says how the bundles share nodes. A
layout the cluster cannot fit fails at start naming the role and what it asked for, instead of waiting forever.
Restarted actors return to their bundle; if its node is gone, Ray re-places the bundle where it fits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from etr_dist.config.checks import parse_resources
from etr_dist.config.schema import RolePlacement


class PlacementError(RuntimeError):
    """A role's placement group could not be placed on this cluster within its deadline."""


@dataclass(frozen=True)
class RoleGroup:
    role: str
    group: PlacementGroup

    def bundle(self, index: int) -> PlacementGroupSchedulingStrategy:
        """The scheduling strategy that puts an actor in bundle `index` of this role's group."""
        return PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=index)

    def remove(self) -> None:
        remove_placement_group(self.group)


def actor_options(cpus: float, gpus: float, placement: RoleGroup | None, index: int) -> dict:
    """Ray options of one actor of a role: its resources, its bundle, and no visible GPU unless it asked for one
    (Ray leaves every GPU of the node visible to an actor that asked for none: two such learner ranks would both
    land on cuda:0, and NCCL refuses a GPU twice)."""
    options: dict = {"num_cpus": cpus, "num_gpus": gpus}
    if gpus == 0:
        options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
    if placement is not None:
        options["scheduling_strategy"] = placement.bundle(index)
    return options


def role_bundle(cpus: float, gpus: float, placement: RolePlacement, role: str) -> dict[str, float]:
    """One actor's bundle (zero amounts left out: Ray refuses them)."""
    resources = parse_resources(placement.resources, f"cluster.roles.{role}.resources")
    wanted = {"CPU": cpus, "GPU": gpus, **resources}
    return {name: amount for name, amount in wanted.items() if amount > 0}


def place_role(
    role: str, count: int, cpus: float, gpus: float, placement: RolePlacement, timeout_s: float
) -> RoleGroup:
    """`count` bundles for `role`, placed with its strategy, or a PlacementError naming what could not fit."""
    bundle = role_bundle(cpus, gpus, placement, role)
    if not bundle:
        raise PlacementError(
            f"the {role} role asks for no resources at all: give it CPUs or a custom resource"
        )
    if not any(_holds(node, bundle) for node in _node_totals()):
        raise PlacementError(
            f"the {role} role can never be placed: no node of this cluster has {bundle} for one bundle "
            f"(cluster.roles.{role}, the role's num_cpus/num_gpus); nodes have {_node_totals()}"
        )
    group = placement_group(
        [bundle] * count, strategy=placement.strategy, name=f"etr_dist-{role}-{uuid.uuid4().hex[:8]}"
    )
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(group)
        raise PlacementError(
            f"could not place the {role} role within {timeout_s:g} s (cluster.timeouts.placement_s): it asks for "
            f"{count} bundle(s) of {bundle} with strategy {placement.strategy} (cluster.roles.{role}); the cluster "
            f"has {_whole(ray.cluster_resources())} in all and {_whole(ray.available_resources())} free"
        )
    return RoleGroup(role, group)


def _whole(resources: dict[str, float]) -> dict[str, float]:
    """Ray's resource dict without its per-node bookkeeping entries."""
    return {k: v for k, v in sorted(resources.items()) if not k.startswith(("node:", "bundle_group"))}


def _node_totals() -> list[dict[str, float]]:
    """Each live node's total resources (what a bundle could ever get there)."""
    return [_whole(node["Resources"]) for node in ray.nodes() if node["Alive"]]


def _holds(node: dict[str, float], bundle: dict[str, float]) -> bool:
    return all(node.get(name, 0.0) >= amount for name, amount in bundle.items())
