"""One color's workload: its Deployment, the Secret behind its secret variables, its migration Job, its PDB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from .children import child_options
from .metadata import owned_metadata
from .domain import ColorSettings, env_value_text


@dataclass(frozen=True)
class ColorWorkloadArgs:
    settings: ColorSettings
    # The secretEnv values, as a Pulumi secret; only their names are in settings.
    secret_env: Optional[pulumi.Input[Mapping[str, Any]]] = None


def pod_labels(settings: ColorSettings) -> dict[str, str]:
    """What the Service (app), the DestinationRule subsets (color) and the label checks (release) select on."""
    return {"app": settings.app, "color": settings.color, "release": settings.release}


def pod_template_labels(settings: ColorSettings) -> dict[str, str]:
    """The pods' labels: pod_labels plus Istio's telemetry label `version` (its metrics' destination_version, the
    release), by which the analysis tells releases apart. Not on the selector, which is immutable."""
    return {**pod_labels(settings), "version": settings.release}


def container_security(settings: ColorSettings) -> k8s.core.v1.SecurityContextArgs:
    """The Pod Security Standards' restricted profile, for every container of the color (app and migration)."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        read_only_root_filesystem=settings.read_only_root_filesystem,
    )


def container_resources(settings: ColorSettings) -> k8s.core.v1.ResourceRequirementsArgs:
    """The CPU and memory requests and limits from config, for every container of the color."""
    return k8s.core.v1.ResourceRequirementsArgs(requests=dict(settings.requests) or None,
                                                limits=dict(settings.limits) or None)


class ColorWorkload(pulumi.ComponentResource):
    """Deployment `<app>-<color>`, awaited until its pods are ready (pulumi-kubernetes' default)."""

    deployment_name: pulumi.Output[str]
    ready_replicas: pulumi.Output[int]

    def __init__(self, name: str, args: ColorWorkloadArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("bluegreen:workload:ColorWorkload", name, None, opts)
        settings = args.settings
        env = self._container_env(name, args)
        migration = self._migration_job(name, settings, env) if settings.migrate_command else None
        labels = pod_labels(settings)
        selector = {"app": settings.app, "color": settings.color}
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=owned_metadata(settings.deployment_name, settings.namespace, labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=settings.replicas,
                # Never the release: the selector is immutable, so a new release must not change it.
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_template_labels(settings)),
                    spec=k8s.core.v1.PodSpecArgs(containers=[k8s.core.v1.ContainerArgs(
                        name=settings.app,
                        image=settings.image,
                        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=settings.port,
                                                             protocol="TCP")],
                        readiness_probe=k8s.core.v1.ProbeArgs(
                            http_get=k8s.core.v1.HTTPGetActionArgs(path=settings.readiness_path,
                                                                   port=settings.port),
                            period_seconds=5,
                            failure_threshold=3,
                        ),
                        env=env,
                        security_context=container_security(settings),
                        resources=container_resources(settings),
                    )], topology_spread_constraints=[k8s.core.v1.TopologySpreadConstraintArgs(
                        # Spread over nodes when it can, without refusing to schedule on a small cluster.
                        max_skew=1, topology_key="kubernetes.io/hostname", when_unsatisfiable="ScheduleAnyway",
                        label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector))]),
                ),
            ),
            opts=child_options(self, depends_on=[migration] if migration else None),
        )
        if settings.replicas > 1:
            # Voluntary evictions (node drains, upgrades) take one pod of the color at a time.
            k8s.policy.v1.PodDisruptionBudget(
                name,
                metadata=owned_metadata(settings.deployment_name, settings.namespace, selector),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
                opts=child_options(self),
            )
        self.deployment_name = deployment.metadata.name
        self.ready_replicas = deployment.status.apply(lambda status: (status.ready_replicas or 0) if status else 0)
        self.register_outputs({"deployment_name": self.deployment_name, "ready_replicas": self.ready_replicas})

    def _container_env(self, name: str, args: ColorWorkloadArgs) -> list[k8s.core.v1.EnvVarArgs]:
        settings = args.settings
        env = [k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in sorted(settings.env.items())]
        if not settings.secret_env_names:
            return env
        secret = k8s.core.v1.Secret(
            f"{name}-env",
            # No explicit name: the Secret is immutable, so changing a value replaces it under a new
            # generated name, and the Deployment that points at the new name rolls its pods.
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=settings.namespace, labels=pod_labels(settings)),
            type="Opaque",
            immutable=True,
            string_data=pulumi.Output.secret(args.secret_env).apply(
                lambda values: {key: env_value_text(value) for key, value in (values or {}).items()}),
            opts=child_options(self),
        )
        return env + [
            k8s.core.v1.EnvVarArgs(name=key, value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret.metadata.name, key=key)))
            for key in settings.secret_env_names
        ]

    def _migration_job(self, name: str, settings: ColorSettings,
                       env: list[k8s.core.v1.EnvVarArgs]) -> k8s.batch.v1.Job:
        """The tutorial's `npm run migrate`, as a Job that must succeed before the pods roll out."""
        # Not `app=<app>`: a running migration pod must never become an endpoint of the Service.
        labels = {"app.kubernetes.io/name": settings.app, "app.kubernetes.io/component": "migration",
                  "bluegreen/color": settings.color, "release": settings.release}
        return k8s.batch.v1.Job(
            f"{name}-migrate",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{settings.deployment_name}-migrate",
                                                namespace=settings.namespace, labels=labels),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=0,  # a failed migration stops the release for a person to look at, not a retry loop
                template=k8s.core.v1.PodTemplateSpecArgs(
                    # An Istio sidecar would keep the pod running after the migration exits.
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels,
                                                        annotations={"sidecar.istio.io/inject": "false"}),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never",
                        containers=[k8s.core.v1.ContainerArgs(
                            name="migrate", image=settings.image, command=list(settings.migrate_command), env=env,
                            security_context=container_security(settings), resources=container_resources(settings))],
                    ),
                ),
            ),
            # A Job's pod template is immutable: a new release replaces the Job, and the fixed name
            # means the old one must go first.
            opts=child_options(self, delete_before_replace=True),
        )
