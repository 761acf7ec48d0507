"""The kubeconfig every component and every user of the local cluster shares."""

from __future__ import annotations

from pathlib import Path

import yaml

from scheduler_extender.devcluster.pki import Pki

CONTEXT = "scheduler-extender-dev"


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    """File paths rather than inline data, so the file stays readable."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": CONTEXT,
                "user": {
                    "client-certificate": str(pki.admin_cert),
                    "client-key": str(pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
