"""The metadata of every long-lived object this program owns."""

from __future__ import annotations

from typing import Mapping

import pulumi_kubernetes as k8s

# Server-side apply gives a field set by hand (kubectl scale, edit, patch, apply) to that field manager,
# and pulumi-kubernetes' preview then fails on the conflict, so even `pulumi up --refresh` could not
# put the object back. These objects are this program's: its next update takes such fields back. (The
# routing stack's label check refuses to route to a hand-edited Deployment before that.)
FORCE_OWNERSHIP = {"pulumi.com/patchForce": "true"}


def owned_metadata(name: str, namespace: str, labels: Mapping[str, str]) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels),
                                      annotations=dict(FORCE_OWNERSHIP))
