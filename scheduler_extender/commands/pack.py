"""``scheduler-extender pack``: plan a better placement for a cluster snapshot, offline.

The input is what ``kubectl get nodes,pods -A -o json`` prints (a v1 List);
PodDisruptionBudgets in the same List (``kubectl get nodes,pods,pdb -A -o
json``) are honoured. Pods with ``spec.nodeName`` are running, the others
pending. The plan is printed as JSON on stdout (schema in the README).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from scheduler_extender.adapters.packer.schema import budget_from_json
from scheduler_extender.commands.common import fail
from scheduler_extender.config import Settings
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.solver import SolveOptions


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pack",
        help="plan a placement that fits more high-priority pods (offline, CP-SAT)",
        description="Read a cluster snapshot (kubectl get nodes,pods -A -o json) and print "
        "a packing plan as JSON: pending pods to place, lower-priority pods to move or evict, "
        "and per priority tier the pods placed before and after.",
    )
    p.add_argument("--input", required=True, metavar="FILE",
                   help="the snapshot: a v1 List of Nodes, Pods and optionally "
                   "PodDisruptionBudgets ('-' reads stdin)")  # fmt: skip
    p.add_argument("--time-limit", dest="time_limit", type=float, metavar="SECONDS",
                   help="solve time limit, model building included (default 1.0)")  # fmt: skip
    p.add_argument("--workers", type=int, metavar="N", help="CP-SAT search workers (default 2)")
    p.add_argument("--scheduler-name", dest="scheduler_names", action="append", metavar="NAME",
                   help="only plan for pods of this scheduler (repeatable; default: all)")  # fmt: skip
    p.set_defaults(run=run, settings_fields=[])


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: list[Node]
    pods: list[Pod]
    budgets: list[DisruptionBudget]


def read_snapshot(source: str, agent_label: str) -> Snapshot:
    """Parse the List; every problem is reported as a CommandError naming the item."""
    document = _load(source)
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        fail(
            f"--input {source}: expected a v1 List with 'items' (kubectl get nodes,pods -A -o json)"
        )
    snapshot = Snapshot([], [], [])
    for i, item in enumerate(document["items"]):
        if not isinstance(item, dict):
            fail(f"--input {source}: items[{i}] is not an object")
        kind = item.get("kind")
        try:
            match kind:
                case "Node":
                    snapshot.nodes.append(node_from_json(item))
                case "Pod":
                    snapshot.pods.append(pod_from_json(item, agent_label))
                case "PodDisruptionBudget":
                    snapshot.budgets.append(budget_from_json(item))
                case _:
                    continue  # other kinds do not affect placement
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            name = (item.get("metadata") or {}).get("name", "?")
            fail(f"--input {source}: items[{i}] ({kind} {name}): {where}: {error['msg']}")
    if not snapshot.nodes:
        fail(f"--input {source}: the List holds no Node")
    return snapshot


def _load(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        fail(f"--input: cannot read {source}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"--input {source}: not UTF-8 text")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--input {source}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")


def run(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    packer = settings.packer
    time_limit = packer.time_limit if args.time_limit is None else args.time_limit
    workers = packer.workers if args.workers is None else args.workers
    if not 0 < time_limit <= 3600:
        fail("--time-limit: must be more than 0 and at most 3600 seconds")
    if not 1 <= workers <= 64:
        fail("--workers: must be between 1 and 64")
    snapshot = read_snapshot(args.input, settings.agent_label)
    policy = PackingPolicy(
        excluded_namespaces=frozenset(packer.excluded_namespaces),
        movable_owner_kinds=frozenset(packer.movable_owner_kinds),
        scheduler_names=frozenset(args.scheduler_names) if args.scheduler_names else None,
        max_agent_replicas_per_node=settings.max_agent_replicas_per_node,
    )
    plan = pack(
        snapshot.nodes,
        snapshot.pods,
        policy=policy,
        options=SolveOptions(time_limit=time_limit, workers=workers),
        budgets=snapshot.budgets,
    )
    json.dump(plan.to_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
