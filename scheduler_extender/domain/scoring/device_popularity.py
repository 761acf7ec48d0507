"""Popularity on shared devices: hot agents' shares are not stacked on one GPU.

``popularity.py`` keeps the predicted load per GPU level across nodes. With
GPU sharing (DRA consumable capacity, ``domain/devices.py``) several replicas
share one device, and a device carrying shares of two hot agents is the
straggler however the node's totals look. This policy scores a replica with a
claim still to be allocated by the predicted load of the devices it would get
(kube-scheduler's allocator, first fit: ``devices.predict_allocation``):

    load(device) = sum over the replicas holding it of rate(agent) / replicas(agent)
    after(node)  = the largest load(device) + rate(pod's agent) / replicas, over its devices

The node whose devices stay the least loaded wins. Differences smaller than
what the replica itself adds are not blown up into a 0-vs-1 preference (as in
``popularity.py``): a cold replica's placement is left to the packing policies.
Without a forecast for the agent, or for pods that are no agent's replicas,
the policy has no opinion.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scheduler_extender.domain.columns import FloatArray, IntArray
from scheduler_extender.domain.devices import DeviceState, pod_devices, predict_allocation
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral


def device_load(state: DeviceState, per_replica: Mapping[str, float]) -> float:
    """Predicted requests/s on one device, from the agents of the replicas holding it."""
    return sum(per_replica.get(agent, 0.0) for agent in state.agents)


class DevicePopularity:
    name = "device_popularity"
    audience = Audience.DEVICES

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        snapshot, popularity = ctx.snapshot, ctx.popularity
        devices = snapshot.devices
        rate = popularity.rate(pod.agent)
        if pod.agent is None or rate is None or rate <= 0 or len(rows) == 0 or not devices:
            return neutral(rows)
        pending = pod_devices(pod.namespace, pod.claims, devices).pending
        if not pending:
            return neutral(rows)
        replicas = snapshot.agent_replicas
        per_replica = {
            agent: max(r, 0.0) / max(replicas.get(agent, 0), 1)
            for agent, r in popularity.rates.items()
        }
        mine = max(rate, 0.0) / max(replicas.get(pod.agent, 0), 1)
        after = np.full(len(rows), np.nan)
        for i, name in enumerate(snapshot.columns.names_of(rows)):
            node = devices.of(name or "")
            if node is None:
                continue
            taken: set[int] = set()
            for request in pending:
                chosen = predict_allocation(request, devices, node)
                if not chosen:
                    break
                taken.update(j for j, _ in chosen)
            else:
                after[i] = max(device_load(node.devices[j], per_replica) + mine for j in taken)
        known = ~np.isnan(after)
        if not known.any():
            return neutral(rows)
        low = float(after[known].min())
        spread = max(float(after[known].max()) - low, mine)
        scored: FloatArray = np.where(known, 1.0 - (np.nan_to_num(after) - low) / spread, 0.0)
        return np.clip(scored, 0.0, 1.0)
