"""Generated requests against every endpoint: no 5xx, and every 4xx explains itself.

Two generators: schemathesis derives requests (valid and invalid) from the
app's own OpenAPI schema, and hypothesis throws arbitrary JSON documents at
the verbs. ``FUZZ_EXAMPLES`` sets the examples per operation (``make test``
runs a quick pass; ``make reliability`` runs the 10 000-request campaign).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.builders import node, pod, pod_json
from tests.support.figures import record
from tests.unit.conftest import Harness, make_harness

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))


def seeded_harness() -> Harness:
    h = make_harness(popularity={"hot": 10.0}, debug=True)
    with h.cluster.locked():
        for name in ("a", "b", ""):
            if name:
                h.cluster.state.upsert_node(node(name, 8))
        h.cluster.state.upsert_pod(pod("p", 1, agent="hot"))
        h.cluster.publish_locked()
    return h


HARNESS = seeded_harness()
schema = schemathesis.openapi.from_asgi("/openapi.json", HARNESS.client.app)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


SENT: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    record("fuzzing", "requests sent", sum(SENT.values()))
    record("fuzzing", "4xx replies", SENT["4xx"])
    record("fuzzing", "5xx replies", SENT["5xx"])


def assert_handled(status: int, body: bytes) -> None:
    SENT[f"{status // 100}xx"] += 1
    assert status < 500, body[:500]
    if status >= 400:
        message = json.loads(body)["error"]
        assert isinstance(message, str)
        assert message


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_schema_driven_requests_never_fail_the_server(case: schemathesis.Case) -> None:
    response = case.call()
    assert_handled(response.status_code, response.content)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)

# Documents shaped like extender arguments, with any part replaced by junk.
pod_like = st.fixed_dictionaries(
    {"metadata": st.fixed_dictionaries({"name": st.text(max_size=10)}) | json_values},
    optional={"spec": json_values, "status": json_values},
)
extender_args = st.fixed_dictionaries(
    {},
    optional={
        "Pod": pod_like | json_values,
        "NodeNames": st.lists(st.text(max_size=8), max_size=10) | json_values,
        "Nodes": st.fixed_dictionaries({"items": st.lists(json_values, max_size=3)}) | json_values,
    },
)
binding_args = st.fixed_dictionaries(
    {},
    optional={
        k: st.text(max_size=10) | json_values for k in ("PodName", "PodNamespace", "PodUID", "Node")
    },
)


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(document=extender_args | binding_args | json_values)
def test_arbitrary_json_never_fails_the_server(verb: str, document: Any) -> None:
    response = HARNESS.client.post(f"/scheduler/{verb}", content=json.dumps(document))
    assert_handled(response.status_code, response.content)


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_fail_the_server(raw: bytes) -> None:
    response = HARNESS.client.post("/scheduler/filter", content=raw)
    assert_handled(response.status_code, response.content)


@settings(max_examples=EXAMPLES // 3 or 1, deadline=None, database=None)
@given(
    gpus=st.integers(min_value=-5, max_value=2**70).map(str)
    | st.sampled_from(["1e308", "0.5", "1Ki", "-0", "\uff11", ""]),
)
def test_absurd_quantities_are_rejected_or_accounted_never_500(gpus: str) -> None:
    document = pod_json("p", 1)
    document["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = gpus
    response = HARNESS.client.post(
        "/scheduler/filter", json={"Pod": document, "NodeNames": ["a", "b"]}
    )
    assert_handled(response.status_code, response.content)
