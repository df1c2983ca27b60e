"""istiod (`pilot-discovery discovery`, built from istio.io/istio) against the sandbox's API server.

Started after the API server and Istio's CRDs are up (`start_istiod`): the istio-system namespace, the mesh
config (ConfigMap `istio`, as Istio's chart makes it), a CA of its own whose serving certificate names
127.0.0.1, and Istio's validating webhook registered with the API server by URL with that CA's bundle, so an
object Istio refuses is refused at admission with Istio's message, as on a cluster. It is recorded under the
name `istiod` in the sandbox's pids/ (a test can stop it; `Sandbox.restart("istiod")` brings it back, on
the same ports, with the same environment: the environment is part of its recorded argv).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import yaml

from bluegreen_tools.cli import Failure, step

from .pki import certificate, name, new_key, write_certificate, write_key

if TYPE_CHECKING:
    from .cluster import Sandbox

NAMESPACE = "istio-system"
REVISION = "default"
WEBHOOK_CONFIG = "istiod-default-validator"  # the name Istio's base chart gives the default revision's webhook
ALWAYS_REJECT = "internal.istio.io/webhook-always-reject"  # Istio's own probe: its webhook refuses any object so marked
SHUTDOWN = "1s"  # istiod drains for 10 s on SIGTERM by default: longer than a test that stops it wants to wait
ENV = "/usr/bin/env"  # in front of the binary, so the recorded argv carries the environment `restart` needs
# istio.io/istio's VERSION file at the pinned commit, plus the "-dev" Istio's Makefile gives a build not from a release
# tag (`check_version_file` holds it to the module): what `istioctl version` and istiod's logs report.
ISTIO_VERSION = "1.31-dev"


def version_ldflags(pin: str) -> tuple[str, ...]:
    """istio.io/istio/pkg/version's variables (each "unknown" unless the linker sets them), as Istio's
    common/scripts/report_build_info.sh sets them; the revision is the pseudo-version's commit."""
    variables = {"buildVersion": ISTIO_VERSION, "buildGitRevision": pin.rsplit("-", 1)[-1], "buildStatus": "Clean",
                 "buildTag": ISTIO_VERSION, "buildHub": "none", "buildOS": "linux", "buildArch": "amd64"}
    return tuple(f"-X istio.io/istio/pkg/version.{name}={value}" for name, value in variables.items())


def check_version_file(module: Path) -> None:
    """Fails when the pinned istio.io/istio (its folder in the module cache) is not ISTIO_VERSION's."""
    found = (module / "VERSION").read_text().strip() + "-dev"
    if found != ISTIO_VERSION:
        raise Failure(f"istio.io/istio's VERSION file says {found!r} but sandbox/istiod.py's ISTIO_VERSION is "
                      f"{ISTIO_VERSION!r}: set ISTIO_VERSION to {found!r} with the new pin")


@dataclass(frozen=True)
class Ports:
    grpc: int  # plaintext xDS (Istio's 15010)
    http: int  # debug and /ready (8080)
    https: int  # webhooks (15017)
    monitoring: int  # istiod's own metrics (15014)
    ctrlz: int  # the introspection page (9876): a fixed default would clash between two sandboxes


def mesh_config(ports: Ports) -> dict:
    """The mesh config: Istio's defaults, with proxies told to reach istiod on its plaintext xDS port."""
    return {"rootNamespace": NAMESPACE, "trustDomain": "cluster.local", "enablePrometheusMerge": True,
            "defaultConfig": {"discoveryAddress": f"127.0.0.1:{ports.grpc}"}}


def mesh_configmap(ports: Ports) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": NAMESPACE, "labels": {"istio.io/rev": REVISION}},
            "data": {"mesh": yaml.safe_dump(mesh_config(ports), sort_keys=False)}}


GATEWAY_SERVICE = "istio-ingressgateway"
GATEWAY_TARGET_PORT = 8080  # Istio's chart: the gateway's port 80 is its pod's 8080, so istiod's listener binds 8080


def gateway_service(namespace: str = NAMESPACE) -> dict:
    """The ingress gateway's Service as Istio's chart makes it: istiod maps a Gateway server's port (80) to the
    listener port through the targetPort of the Service selecting the gateway's pods."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": GATEWAY_SERVICE, "namespace": namespace,
                         "labels": {"app": GATEWAY_SERVICE, "istio": "ingressgateway"}},
            "spec": {"selector": {"istio": "ingressgateway"},
                     "ports": [{"name": "http2", "port": 80, "targetPort": GATEWAY_TARGET_PORT}]}}


def apply_gateway_service(sandbox: "Sandbox", namespace: str) -> None:
    """The Service in a namespace whose gateway proxy is scoped to it: istiod finds a proxy without a pod by its
    labels among the Services of the proxy's own namespace, and without one binds the listener to 80, not 8080."""
    folder = sandbox.folder / "istiod"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gateway-service-{namespace}.json"
    path.write_text(json.dumps(gateway_service(namespace)))
    apply(sandbox, path, f"Service {GATEWAY_SERVICE} in namespace {namespace}")


def webhook_configuration(url: str, ca_bundle: bytes) -> dict:
    """Istio's base chart's webhook for the default revision, with `base.validationURL` and
    `base.validationCABundle` set: the chart then installs it with failurePolicy Fail (a webhook whose CA is
    known up front needs no switch from Ignore). istiod's controller keeps the bundle in step with its CA."""
    import base64

    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": WEBHOOK_CONFIG, "labels": {"app": "istiod", "istio": "istiod",
                                                            "istio.io/rev": REVISION}},
            "webhooks": [{
                "name": "validation.istio.io",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_bundle).decode()},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiVersions": ["*"], "resources": ["*"],
                           "apiGroups": ["security.istio.io", "networking.istio.io", "telemetry.istio.io",
                                         "extensions.istio.io"]}],
                "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}


def environment(kubeconfig: Path) -> dict[str, str]:
    """What istiod reads from its Deployment on a cluster (Istio's chart sets the first four), and what turns
    off the parts the sandbox has no use for."""
    return {
        "POD_NAMESPACE": NAMESPACE, "REVISION": REVISION,
        "POD_NAME": "istiod-sandbox",  # its leader-election identity: the same after a restart, so it leads at once
        "KUBECONFIG": str(kubeconfig),
        "INJECT_ENABLED": "false",  # no pods run: no sidecar injection webhook
        "PILOT_ENABLE_GATEWAY_API": "false",  # the sandbox has no Gateway API CRDs; the program uses Istio's own
        "PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER": "false",
        # A gateway proxy sees the Gateways of its own namespace only: one xDS-routed gateway per e2e project.
        "PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true",
    }


def argv(binary: Path, ports: Ports, tls: Path, kubeconfig: Path) -> list[str]:
    """The command line: every port on 127.0.0.1; the webhook's certificate from tls/ (istiod's flags take
    precedence over its well-known /var/run/secrets/istiod/tls); no secure xDS port (the gateway stand-in
    is to speak plaintext xDS, issue 22; without it istiod opens no 15012)."""
    env = [f"{name}={value}" for name, value in environment(kubeconfig).items()]
    return [ENV, *env, str(binary), "discovery", "--kubeconfig", str(kubeconfig), "--domain", "cluster.local",
            "--grpcAddr", f"127.0.0.1:{ports.grpc}", "--httpAddr", f"127.0.0.1:{ports.http}",
            "--httpsAddr", f"127.0.0.1:{ports.https}", "--monitoringAddr", f"127.0.0.1:{ports.monitoring}",
            "--secureGRPCAddr", "", "--ctrlz_address", "127.0.0.1", "--ctrlz_port", str(ports.ctrlz),
            "--tlsCertFile", str(tls / "tls.crt"), "--tlsKeyFile", str(tls / "tls.key"),
            "--caCertFile", str(tls / "ca.crt"), "--shutdownDuration", SHUTDOWN]


def make_certificates(tls: Path) -> None:
    """istiod's CA (ca.crt) and the webhook's serving certificate (tls.crt, tls.key) for 127.0.0.1, which the
    API server dials, and istiod's in-cluster name."""
    from ipaddress import ip_address

    from cryptography import x509

    tls.mkdir(parents=True, exist_ok=True)
    ca_key, key = new_key(), new_key()
    ca_name = name("istiod-sandbox-ca")
    ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    server = certificate(name("istiod"), key, ca_name, ca_key, ca=False,
                         sans=(x509.IPAddress(ip_address("127.0.0.1")), x509.DNSName(f"istiod.{NAMESPACE}.svc")))
    write_certificate(tls / "ca.crt", ca)
    write_certificate(tls / "tls.crt", server)
    write_key(tls / "tls.key", key)


def probe_gateway() -> dict:
    """A Gateway that istiod's webhook always refuses (Istio's own readiness probe of it), for a dry run."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "webhook-probe", "namespace": NAMESPACE, "annotations": {ALWAYS_REJECT: "true"}},
            "spec": {}}


def webhook_answers(sandbox: "Sandbox", probe: Path) -> Callable[[], bool]:
    """Ready when the API server's dry run of the probe is denied by the webhook (not failed calling it)."""
    def ready() -> bool:
        done = sandbox.kubectl("create", "--dry-run=server", "-f", str(probe), timeout=30)
        return done.returncode != 0 and "denied the request" in done.stderr
    return ready


def apply(sandbox: "Sandbox", path: Path, what: str) -> None:
    done = sandbox.kubectl("apply", "-f", str(path), timeout=60)
    if done.returncode != 0:
        raise Failure(f"kubectl apply of {what} failed: {done.stderr.strip()[-500:]}")


PORT_ATTEMPTS = 3  # starts of istiod, each on newly picked ports, when one was taken before it bound it


def start_istiod(sandbox: "Sandbox", binary: Optional[Path] = None) -> dict[str, str]:
    """istiod on 127.0.0.1 with its webhook registered; waits until the webhook answers at admission.
    What the env file needs: BLUEGREEN_ISTIOD_XDS (plaintext ADS) and BLUEGREEN_ISTIOD_HTTP (debug, /ready)."""
    from .cluster import free_port, http_ok

    binary = binary or sandbox.bin / "pilot-discovery"
    if not binary.exists():
        raise Failure(f"no {binary}: the build has no istiod; run `python -m sandbox build`")
    folder = sandbox.folder / "istiod"
    tls = folder / "tls"
    with step("start istiod (Istio's control plane: its validating webhook and xDS)"):
        started = time.monotonic()
        make_certificates(tls)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            ports = Ports(*(free_port() for _ in range(5)))
            (folder / "config.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, mesh_configmap(ports),
                gateway_service()]}))
            apply(sandbox, folder / "config.json", f"namespace {NAMESPACE} and the mesh config")
            process = sandbox.start("istiod", argv(binary, ports, tls, sandbox.kubeconfig))
            try:
                sandbox.wait("istiod", "/ready", http_ok(f"http://127.0.0.1:{ports.http}/ready"))
                break
            except Failure:
                # A port free when picked can be taken before istiod binds it (another sandbox on the machine)
                if attempt == PORT_ATTEMPTS or process.poll() is None or "address already in use" not in \
                        sandbox.log_tail("istiod", 50):
                    raise
        url = f"https://127.0.0.1:{ports.https}/validate"
        (folder / "webhook.json").write_text(json.dumps(webhook_configuration(url, (tls / "ca.crt").read_bytes())))
        apply(sandbox, folder / "webhook.json", f"ValidatingWebhookConfiguration {WEBHOOK_CONFIG}")
        (folder / "probe.json").write_text(json.dumps(probe_gateway()))
        sandbox.wait("istiod", "its webhook's answer at admission", webhook_answers(sandbox, folder / "probe.json"))
        (folder / "ports.json").write_text(json.dumps({**asdict(ports), "seconds": round(time.monotonic() - started, 2)}))
    return {"BLUEGREEN_ISTIOD_XDS": f"127.0.0.1:{ports.grpc}", "BLUEGREEN_ISTIOD_HTTP": f"http://127.0.0.1:{ports.http}"}
