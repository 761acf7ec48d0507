"""The Helm chart's settings schemas, generated from the service's pydantic settings models.

``values.schema.json`` is hand-written except for the four maps that pass settings
through to the service (``extender.settings``, ``extender.packer``,
``prometheus.settings``, ``controller.settings``): their ``properties`` are made
here from ``model_json_schema()``, so that a setting, its type, bounds and
description are written once, in ``config.py``. ``tests/unit/chart`` checks that
the chart's file is up to date; ``make chart-schema`` rewrites it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from scheduler_extender import config

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "helm/scheduler-extender/values.schema.json"


@dataclass(frozen=True, slots=True)
class Fragment:
    path: tuple[str, str]  # where the map is in values.yaml
    model: type[BaseModel]
    # Fields the chart sets itself (or offers as values of their own), not in the map.
    chart_sets: frozenset[str]


# The extender's settings the chart writes from values of their own (or that nest other maps).
_CHART_SETS_EXTENDER = frozenset(
    [
        "host",
        "port",
        "probe_port",
        "probe_host",
        "url_prefix",
        "kubeconfig",
        "scheduler_name",
        "log_level",
        "log_format",
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "prometheus",
        "packer",
        "controller",
    ]
)

FRAGMENTS = (
    Fragment(("extender", "settings"), config.Settings, _CHART_SETS_EXTENDER),
    Fragment(
        ("extender", "packer"),
        config.PackerSettings,
        frozenset({"lease_name", "lease_namespace", "identity"}),
    ),
    Fragment(("prometheus", "settings"), config.PrometheusSettings, frozenset({"url"})),
    Fragment(
        ("controller", "settings"),
        config.ControllerSettings,
        frozenset({"identity", "with_extender"}),
    ),
)

# What pydantic writes that a values schema does not need (or helm would not check).
_DROPPED = ("title", "default", "format", "writeOnly")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def properties(fragment: Fragment) -> dict[str, Any]:
    """The map's ``properties``: one per settings field the chart passes through."""
    schema = fragment.model.model_json_schema()
    definitions = schema.get("$defs", {})
    return {
        camel(name): _plain(field, definitions)
        for name, field in schema["properties"].items()
        if name not in fragment.chart_sets
    }


def _plain(node: Any, definitions: dict[str, Any]) -> Any:
    """``node`` with references inlined, ``None`` alternatives dropped (unset is the default)."""
    if isinstance(node, list):
        return [_plain(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        resolved = {**definitions[node["$ref"].rsplit("/", 1)[-1]], **node}
        del resolved["$ref"]
        return _plain(resolved, definitions)
    out = {k: _plain(v, definitions) for k, v in node.items() if k not in _DROPPED}
    options = [o for o in out.get("anyOf", []) if o != {"type": "null"}]
    if "anyOf" in out and len(options) == 1:
        del out["anyOf"]
        out = {**options[0], **out}
    elif "anyOf" in out:
        out["anyOf"] = options
    return out


def generated(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (the chart's values schema) with every settings map regenerated."""
    out: dict[str, Any] = json.loads(json.dumps(schema))
    for fragment in FRAGMENTS:
        section, key = fragment.path
        out["properties"][section]["properties"][key]["properties"] = properties(fragment)
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    current = SCHEMA_FILE.read_text()
    wanted = render(generated(json.loads(current)))
    if current == wanted:
        return 0
    if args.check:
        print(f"{SCHEMA_FILE} is out of date: run 'make chart-schema'", file=sys.stderr)
        return 1
    SCHEMA_FILE.write_text(wanted)
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
