"""The demo's terminal summary, from an observation (no cluster)."""

from __future__ import annotations

from pathlib import Path

from scheduler_extender.commands.demo import summary
from scheduler_extender.devcluster import demo


def observation(**changes: object) -> demo.Observation:
    seen = demo.Observation(
        elapsed=93.0,
        agents=[
            demo.AgentRow("agent-00", 87.61, 87.3, 9, 9, 8, ["gpu-8g-0000", "gpu-8g-0000", "gpu-1g-0007"]),
            demo.AgentRow("agent-01", None, None, None, 3, 0, []),
        ],
        decisions=[
            demo.Decision("agents/agent-01-x", "gpu-4g-0005", 9.0,
                          {"agent_spread": 3.3, "popularity": 5.0, "gpu_binpack": 0.4}),
        ],
        packer_events=[("PackingDryRun", "dry run: would place this pod on batch-8g-0000")],
        large_pod_node=None,
        firing_alerts=[],
        dashboards=[Path("/run/demo/dashboards/gpus.png"), Path("/run/demo/dashboards/packer.png")],
        shared={"shared-0/gpu-0": [6 * 2**30] * 4, "shared-0/gpu-1": [6 * 2**30] * 2},
    )  # fmt: skip
    for name, value in changes.items():
        setattr(seen, name, value)
    return seen


def test_every_agent_has_its_rates_replicas_and_nodes() -> None:
    text = summary(observation(), "dry-run")
    row = next(line for line in text.splitlines() if "agent-00" in line)
    assert row.split()[:6] == ["agent-00", "87.6", "87.3", "9", "9", "8"]
    assert "gpu-8g-0000x2" in row
    assert "gpu-1g-0007" in row
    unknown = next(line for line in text.splitlines() if "agent-01 " in line)
    assert unknown.split()[:6] == ["agent-01", "-", "-", "-", "3", "0"]


def test_decisions_show_each_policy_share_and_the_rescue_its_events() -> None:
    text = summary(observation(), "dry-run")
    assert "agents/agent-01-x" in text
    assert "agent_spread=+3.3 gpu_binpack=+0.4 popularity=+5.0" in text
    assert "batch/trainer (8 GPUs): dry-run" in text
    assert "PackingDryRun" in text
    assert "firing alerts: none" in text
    assert "dashboards: /run/demo/dashboards/ gpus.png, packer.png" in text


def test_each_shared_gpu_shows_its_shares() -> None:
    lines = summary(observation(), "dry-run").splitlines()
    assert any(
        line.split() == ["shared-0/gpu-0", "4", "shares,", "24Gi", "taken"] for line in lines
    )
    assert any(
        line.split() == ["shared-0/gpu-1", "2", "shares,", "12Gi", "taken"] for line in lines
    )


def test_before_anything_happened_it_says_so() -> None:
    quiet = observation(decisions=[], dashboards=[], firing_alerts=["X"], shared={})
    text = summary(quiet, "waiting")
    assert "(none yet)" in text
    assert "(no claim allocated yet)" in text
    assert "(first drawing in progress)" in text
    assert "firing alerts: X" in text
