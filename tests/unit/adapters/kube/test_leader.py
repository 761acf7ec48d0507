"""Leader-election settings (the controller and the background packer)."""

from __future__ import annotations

import pytest

from scheduler_extender.adapters.kube.leader import LeaseConfig


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(10, 10, 2), (15, 2, 2), (15, 10, 0), (5, 4, 4)]
)
def test_lease_settings_the_client_would_exit_on_are_refused(
    duration: int, deadline: int, retry: int
) -> None:
    with pytest.raises(ValueError, match="lease duration"):
        LeaseConfig("l", "ns", "me", duration, deadline, retry)


def test_default_lease_settings_are_accepted() -> None:
    LeaseConfig("l", "ns", "me")
