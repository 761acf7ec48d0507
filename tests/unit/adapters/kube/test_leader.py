"""Leader-election settings (the controller and the background packer) and the Lease built from them."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client
from pydantic import ValidationError

from scheduler_extender.adapters.kube.leader import LeaseConfig, Unelected, leadership
from scheduler_extender.config import ControllerSettings, LeaseSettings, PackerSettings


@pytest.mark.parametrize("component", [ControllerSettings, PackerSettings])
@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(10, 10, 2), (15, 2, 2), (15, 10, 0), (5, 4, 4)]
)
def test_lease_settings_the_client_would_exit_on_are_refused(
    component: type[LeaseSettings], duration: int, deadline: int, retry: int
) -> None:
    with pytest.raises(ValidationError, match="retry_period"):
        component(lease_duration=duration, renew_deadline=deadline, retry_period=retry)


def test_the_lease_comes_from_the_settings_with_an_identity_and_a_namespace() -> None:
    lease = LeaseConfig.of(PackerSettings())
    assert lease.name == "scheduler-extender-packer"
    assert lease.namespace == "default"  # outside a cluster
    assert (lease.lease_duration, lease.renew_deadline, lease.retry_period) == (15, 10, 2)
    assert lease.identity
    assert lease.identity != LeaseConfig.of(PackerSettings()).identity

    named = LeaseConfig.of(ControllerSettings(identity="me", lease_namespace="ops"))
    assert (named.name, named.namespace, named.identity) == (
        "scheduler-extender-controller",
        "ops",
        "me",
    )


def test_without_election_the_process_leads_until_it_stops() -> None:
    terms: list[threading.Event] = []
    began = threading.Event()
    changes: list[bool] = []

    def lead(term: threading.Event) -> None:
        terms.append(term)
        began.set()
        term.wait()

    runner = leadership(client.ApiClient(), None, lead, name="test", on_change=changes.append)
    assert isinstance(runner, Unelected)
    assert changes == [True]
    runner.start()
    assert began.wait(5.0)
    assert runner.leading
    runner.stop(timeout=5.0)
    assert terms[0].is_set()
    assert not runner.leading
