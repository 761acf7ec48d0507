"""Scenario generator in the style of the paper's "Workload Once Generator".

Identical nodes; pods in ReplicaSets of U{1..4} replicas (the last one
trimmed to the pod count); each ReplicaSet draws cpu U{100..1000}m, memory
U{100..1000} MB and priority U{1..K}. Per-node capacity of each resource is
max(largest request, ceil(sum of requests / utilisation / nodes)), as in the
paper's generator (arXiv 2511.08373; henrikdchristensen/scheduler-plugins).

GPU variant: nodes have 8 GPUs; a share of the ReplicaSets asks for 1, 2, 4
or 8 GPUs (weights 4:3:2:1), the share chosen so that the expected GPU demand
is the target utilisation of the cluster's GPUs.

The deterministic greedy baseline then places all pods, highest priority
first; a scenario is *kept* when it leaves pods pending. The packer gets the
resulting cluster: the greedy's pods running, the rest pending.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

from scheduler_extender.domain.objects import Node, Owner, Pod
from scheduler_extender.domain.packing.greedy import default_placement
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.problem import build_problem
from scheduler_extender.domain.resources import CPU, DEFAULT_GPU_RESOURCE, MEMORY, PODS, Resources

GPU_SIZES = (1, 2, 4, 8)
GPU_WEIGHTS = (4, 3, 2, 1)
GPUS_PER_NODE = 8
POLICY = PackingPolicy(excluded_namespaces=frozenset())


@dataclass(frozen=True, slots=True)
class Spec:
    nodes: int
    pods_per_node: int
    priorities: int
    utilisation: float
    gpu: bool = False

    @property
    def label(self) -> str:
        kind = "gpu" if self.gpu else "cpu"
        return (
            f"{kind} {self.nodes}x{self.pods_per_node} K={self.priorities} u={self.utilisation:.2f}"
        )


@dataclass(frozen=True, slots=True)
class Scenario:
    spec: Spec
    seed: int
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]  # after the greedy baseline: running or pending
    pending: int


def workload(spec: Spec, seed: int) -> tuple[list[Node], list[Pod]]:
    """Nodes and all pods, every pod pending."""
    rng = random.Random(seed)
    total = spec.nodes * spec.pods_per_node
    mean_gpu = sum(s * w for s, w in zip(GPU_SIZES, GPU_WEIGHTS, strict=True)) / sum(GPU_WEIGHTS)
    gpu_share = min(1.0, spec.utilisation * GPUS_PER_NODE / (spec.pods_per_node * mean_gpu))
    pods: list[Pod] = []
    rs = 0
    while len(pods) < total:
        replicas = min(rng.randint(1, 4), total - len(pods))
        cpu = rng.randint(100, 1000)
        memory = rng.randint(100, 1000) * 10**6
        priority = rng.randint(1, spec.priorities)
        requests = {CPU: cpu, MEMORY: memory, PODS: 1}
        if spec.gpu and rng.random() < gpu_share:
            requests[DEFAULT_GPU_RESOURCE] = rng.choices(GPU_SIZES, GPU_WEIGHTS)[0]
        owner = Owner("ReplicaSet", f"rs-{rs:05d}", f"uid-rs-{seed}-{rs}")
        for k in range(replicas):
            name = f"rs-{rs:05d}-{k}"
            pods.append(
                Pod(
                    name=name,
                    namespace="default",
                    uid=f"uid-{seed}-{name}",
                    requests=Resources.of(requests),
                    priority=priority,
                    labels={"app": owner.name, "pod-template-hash": f"h{rs}"},
                    owner=owner,
                )
            )
        rs += 1
    capacity = {
        name: max(
            max(p.requests.get(name) for p in pods),
            math.ceil(sum(p.requests.get(name) for p in pods) / spec.utilisation / spec.nodes),
        )
        for name in (CPU, MEMORY)
    }
    capacity[PODS] = 110
    if spec.gpu:
        capacity[DEFAULT_GPU_RESOURCE] = GPUS_PER_NODE
    nodes = [
        Node(name=f"node-{i:04d}", allocatable=Resources.of(capacity), labels={})
        for i in range(spec.nodes)
    ]
    return nodes, pods


def scenario(spec: Spec, seed: int) -> Scenario:
    """The cluster after the greedy baseline placed what it could."""
    nodes, pods = workload(spec, seed)
    problem = build_problem(nodes, pods, POLICY)
    placed = default_placement(problem)
    names = [n.name for n in problem.nodes]
    out: list[Pod] = []
    pending = 0
    for group in problem.groups:
        slots = [
            names[n] for n in range(len(names)) for _ in range(int(placed.counts[group.index, n]))
        ]
        for i, pod in enumerate(group.pending):
            if i < len(slots):
                out.append(dataclasses.replace(pod, node_name=slots[i], phase="Running"))
            else:
                out.append(pod)
                pending += 1
    return Scenario(spec, seed, tuple(nodes), tuple(out), pending)


def kept_scenarios(
    spec: Spec, count: int, first_seed: int = 0, max_tries: int = 2000
) -> list[Scenario]:
    """The first ``count`` seeds whose greedy placement leaves pods pending."""
    kept: list[Scenario] = []
    seed = first_seed
    while len(kept) < count and seed < first_seed + max_tries:
        candidate = scenario(spec, seed)
        if candidate.pending:
            kept.append(candidate)
        seed += 1
    return kept
