"""``serve``'s background packer: the cache, the API adapter, leader election, the service.

Off unless ``SCHEDULER_EXTENDER_PACKER__ENABLED=true``. The packer must run in
the process whose filter answers kube-scheduler, because that filter honours
its reservations (they are held in memory and published with the cache's
snapshots); only the replica holding the Lease plans, reserves and evicts.
"""

from __future__ import annotations

import logging

from kubernetes import client
from prometheus_client import CollectorRegistry

from scheduler_extender.adapters.kube.cache import ClusterCache
from scheduler_extender.adapters.kube.leader import (
    LeaderElector,
    LeaseConfig,
    Unelected,
    leadership,
)
from scheduler_extender.adapters.packer.kube import CacheObjects, KubePackerApi
from scheduler_extender.adapters.packer.metrics import PackerMetrics
from scheduler_extender.config import Settings
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.solver import SolveOptions
from scheduler_extender.service.packer import Packer, PackerConfig

log = logging.getLogger(__name__)


def build_background_packer(
    settings: Settings, api: client.ApiClient, cache: ClusterCache, registry: CollectorRegistry
) -> LeaderElector | Unelected | None:
    """Who runs the packer (not started yet); its metrics go to ``registry``. None when disabled."""
    cfg = settings.packer
    if not cfg.enabled:
        return None
    lease = LeaseConfig.of(cfg)
    config = PackerConfig(
        scheduler_name=settings.scheduler_name,
        policy=PackingPolicy(
            excluded_namespaces=frozenset(cfg.excluded_namespaces),
            movable_owner_kinds=frozenset(cfg.movable_owner_kinds),
            # Only pods our filter sees: their replacements follow our reservations.
            scheduler_names=frozenset({settings.scheduler_name}),
            max_agent_replicas_per_node=settings.max_agent_replicas_per_node,
        ),
        options=SolveOptions(time_limit=cfg.time_limit, workers=cfg.workers),
        debounce=cfg.debounce,
        min_interval=cfg.min_interval,
        min_improvement=cfg.min_improvement,
        dry_run=cfg.dry_run,
        reservation_ttl=cfg.reservation_ttl,
        eviction_interval=60.0 / cfg.evictions_per_minute,
    )
    packer = Packer(
        CacheObjects(cache),
        KubePackerApi(api, instance=lease.identity),
        config,
        PackerMetrics(registry),
    )
    runner = leadership(
        api,
        lease if cfg.leader_elect else None,
        lambda term: packer.lead(term, cfg.interval),
        name="packer",
    )
    log.info(
        "background packer enabled (%s, leader election %s)",
        "dry run" if cfg.dry_run else "acting",
        "on" if cfg.leader_elect else "off",
    )
    return runner
