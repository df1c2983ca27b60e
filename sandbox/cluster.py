"""`python -m sandbox up` and `down`: the control plane on 127.0.0.1, a Pulumi file backend, Prometheus, the gateway stand-in.

No container ever runs: kwok marks pods Running and Ready (and Job pods Succeeded) without running them.
Every process `up` starts is recorded under its name in the sandbox's pids/ folder; `down` stops them all.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional, Sequence

from bluegreen_tools.cli import EXIT_OK, Failure, log, step

from .build import build_dir, ensure_dir, python_pin
from .istiod import apply_gateway_service, start_istiod
from .prometheus_server import add_scrape_target, remove_scrape_target, start_prometheus
from .pki import certificate, name, new_key, write_certificate, write_key

START_TIMEOUT = 120.0  # seconds for one component to become ready (a loaded 2-core machine has needed over 60)
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
NODE = "kwok-node-0"
ADMIN = "bluegreen-admin"

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_certificates(pki: Path) -> None:
    """A CA, the API server's serving certificate for 127.0.0.1, and the service-account signing key."""
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca_key, server_key, service_accounts = new_key(), new_key(), new_key()
    ca_name = name("bluegreen-sandbox-ca")
    ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    server = certificate(name("kube-apiserver"), server_key, ca_name, ca_key, ca=False,
                         sans=(x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1")),
                               x509.DNSName("kubernetes.default.svc")))
    write_certificate(pki / "ca.crt", ca)
    write_certificate(pki / "apiserver.crt", server)
    write_key(pki / "apiserver.key", server_key)
    write_key(pki / "sa.key", service_accounts)
    (pki / "sa.pub").write_bytes(service_accounts.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


class Sandbox:
    """The folder of one running sandbox: pki/, logs/, pids/, etcd data, the Pulumi backend."""

    def __init__(self, folder: Path, bin_dir: Path):
        self.folder, self.bin = folder, bin_dir
        self.logs, self.pids, self.pki = (ensure_dir(folder / name) for name in ("logs", "pids", "pki"))
        self.kubeconfig = folder / "kubeconfig"
        self.processes: dict[str, subprocess.Popen] = {}

    @classmethod
    def of_env(cls, env: dict[str, str]) -> "Sandbox":
        """The running sandbox an env file describes (read_env_file): its folder, and the build's binaries
        (the bin/ first on its PATH that holds kubectl)."""
        kubectl = shutil.which("kubectl", path=env["PATH"])
        if kubectl is None:
            raise Failure(f"no kubectl on the sandbox's PATH ({env['PATH']}): run `python -m sandbox build`")
        return cls(Path(env["BLUEGREEN_SANDBOX"]), Path(kubectl).parent)

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen:
        """One component, in its own session (so it outlives this script), logging to logs/NAME.log."""
        with open(self.logs / f"{name}.log", "wb") as out:
            executable = argv[0] if os.path.isabs(argv[0]) else str(self.bin / argv[0])
            process = subprocess.Popen([executable, *argv[1:]], stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True, cwd=self.folder)
        (self.pids / f"{name}.pid").write_text(str(process.pid))
        (self.pids / f"{name}.argv").write_text(json.dumps([executable, *argv[1:]]))
        self.processes[name] = process
        return process

    def restart(self, name: str) -> subprocess.Popen:
        """Start a stopped component again, as `up` started it (for tests that stop one mid-update)."""
        argv = json.loads((self.pids / f"{name}.argv").read_text())
        return self.start(name, argv)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(f"    {line}" for line in text.strip().splitlines()[-lines:])

    def wait(self, name: str, what: str, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Until `ready()`; fails with the component's log tail when it exits or the time runs out."""
        deadline = time.monotonic() + timeout
        process = self.processes.get(name)
        while True:
            if process is not None and process.poll() is not None:
                raise Failure(f"{name} exited ({process.returncode}) before {what}; the end of "
                              f"{self.logs / (name + '.log')}:\n{self.log_tail(name)}")
            try:
                if ready():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            if time.monotonic() > deadline:
                raise Failure(f"{name}: no {what} after {timeout:.0f}s; the end of "
                              f"{self.logs / (name + '.log')}:\n{self.log_tail(name)}")
            time.sleep(0.2)

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args], text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def stop_recorded(folder: Path, only: Optional[str] = None) -> list[str]:
    """Stop every process recorded in folder/pids, or the one named, newest first (the clients before
    the API server, the API server before etcd, so none waits on a dependency already gone):
    SIGTERM, then SIGKILL after STOP_TIMEOUT. The names stopped."""
    stopped = []
    pids = folder / "pids"
    files = sorted(pids.glob(f"{only or '*'}.pid"), key=lambda f: f.stat().st_mtime_ns, reverse=True) \
        if pids.is_dir() else []
    for pid_file in files:
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ValueError, OSError):
            continue  # gone already
        if str(folder).encode() not in cmdline:
            continue  # the PID was reused by another process: not ours
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        remove_scrape_target(folder, pid_file.stem)  # Prometheus stops scraping what is gone
        stopped.append(pid_file.stem)
    return stopped


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def write_kubeconfig(sandbox: Sandbox, port: int, token: str) -> None:
    sandbox.kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "bluegreen-sandbox",
        "clusters": [{"name": "bluegreen-sandbox", "cluster": {
            "server": f"https://127.0.0.1:{port}", "certificate-authority": str(sandbox.pki / "ca.crt")}}],
        "users": [{"name": ADMIN, "user": {"token": token}}],
        "contexts": [{"name": "bluegreen-sandbox", "context": {"cluster": "bluegreen-sandbox", "user": ADMIN}}],
    }, indent=2))
    sandbox.kubeconfig.chmod(0o600)


def api_ready(sandbox: Sandbox, port: int, token: str) -> Callable[[], bool]:
    context = ssl.create_default_context(cafile=str(sandbox.pki / "ca.crt"))
    request = urllib.request.Request(f"https://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {token}"})

    def ready() -> bool:
        with urllib.request.urlopen(request, timeout=2, context=context) as answer:
            return answer.status == 200
    return ready


def http_answers(url: str) -> Callable[[], bool]:
    """Ready when the server answers at all (a 404 is an answer)."""
    def ready() -> bool:
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError:
            pass
        return True
    return ready


def http_ok(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    return ready


def start_control_plane(sandbox: Sandbox, share: Path) -> None:
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    with step("start etcd"):
        sandbox.start("etcd", [
            "etcd", "--name", "sandbox", "--data-dir", str(sandbox.folder / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"sandbox=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn"])
        sandbox.wait("etcd", "health", http_ok(f"http://127.0.0.1:{etcd_port}/health"))

    token = secrets.token_hex(24)
    (sandbox.pki / "tokens.csv").write_text(f'{token},{ADMIN},{ADMIN},"system:masters"\n')
    write_kubeconfig(sandbox, api_port, token)
    with step("start kube-apiserver"):
        pki = sandbox.pki
        sandbox.start("kube-apiserver", [
            "kube-apiserver", "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(api_port),
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"), "--token-auth-file", str(pki / "tokens.csv"),
            "--authorization-mode", "RBAC", "--service-cluster-ip-range", "10.96.0.0/16",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--enable-priority-and-fairness=false", "--endpoint-reconciler-type", "none"])
        sandbox.wait("kube-apiserver", "/readyz", api_ready(sandbox, api_port, token))

    kubeconfig = str(sandbox.kubeconfig)
    with step("start kube-controller-manager, kube-scheduler and kwok"):
        sandbox.start("kube-controller-manager", [
            "kube-controller-manager", "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig, "--leader-elect=false",
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--service-account-private-key-file", str(sandbox.pki / "sa.key"),
            "--root-ca-file", str(sandbox.pki / "ca.crt"), "--controllers", "*,-nodeipam"])
        sandbox.start("kube-scheduler", [
            "kube-scheduler", "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig, "--leader-elect=false",
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port())])
        sandbox.start("kwok", [
            "kwok", "--kubeconfig", kubeconfig, "--config", str(share / "kwok-stages.yaml"),
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
            "--node-ip", "127.0.0.1", "--cidr", "10.244.0.1/16", "--server-address", f"127.0.0.1:{free_port()}"])
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "type": "kwok"}}}
        (sandbox.folder / "node.json").write_text(json.dumps(node))
        created = sandbox.kubectl("apply", "-f", str(sandbox.folder / "node.json"))
        if created.returncode != 0:
            raise Failure(f"could not create node {NODE}: {created.stderr.strip()}")
        # Ready, and schedulable: the node lifecycle controller lifts the not-ready taint once kwok reports it Ready.
        sandbox.wait("kwok", f"node {NODE} Ready and untainted", lambda: sandbox.kubectl(
            "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}/{.spec.taints}"
        ).stdout == "True/")
        sandbox.wait("kube-controller-manager", "ServiceAccount default/default",
                     lambda: sandbox.kubectl("get", "serviceaccount", "default", "-n", "default").returncode == 0)

    with step("install Istio's CRDs"):
        crds = str(share / "istio-crds.yaml")
        applied = sandbox.kubectl("apply", "--server-side", "-f", crds, timeout=120)
        if applied.returncode != 0:
            raise Failure(f"kubectl apply of Istio's CRDs failed: {applied.stderr.strip()[-500:]}")
        established = sandbox.kubectl("wait", "--for", "condition=Established", "--timeout", "60s", "-f", crds,
                                      timeout=90)
        if established.returncode != 0:
            raise Failure(f"Istio's CRDs were not Established: {established.stderr.strip()[-500:]}")


def install_provider(bin_dir: Path, home: Path) -> None:
    """`pulumi plugin install` of the built provider, at the version the Python package asks for."""
    version = "v" + python_pin("pulumi-kubernetes")
    try:
        done = subprocess.run([str(bin_dir / "pulumi"), "plugin", "install", "resource", "kubernetes", version,
                               "--file", str(bin_dir / "pulumi-resource-kubernetes")], text=True, capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "PULUMI_HOME": str(home),
                                                                           "PULUMI_SKIP_UPDATE_CHECK": "true"})
    except subprocess.TimeoutExpired:
        raise Failure("`pulumi plugin install` of the provider did not finish in 120s") from None
    if done.returncode != 0:
        raise Failure(f"`pulumi plugin install resource kubernetes {version}` failed: {done.stderr.strip()[-500:]}")


def start_gateway(sandbox: Sandbox, namespace: str) -> str:
    """The gateway and app stand-ins for one namespace (sandbox/gateway.py: routed by the Envoy config istiod
    pushes, Envoy's forwarding and stats emulated): its URL. Recorded as gateway-NAMESPACE (`down` stops it);
    its Istio metrics are added to Prometheus's targets (prometheus/targets/NAME.json)."""
    ports = sandbox.folder / "istiod" / "ports.json"  # istiod's record of its ports (sandbox/istiod.py)
    if not ports.exists():
        raise Failure(f"start_gateway: no {ports}: this sandbox has no istiod; `python -m sandbox up` starts one")
    address = f"127.0.0.1:{json.loads(ports.read_text())['grpc']}"
    apply_gateway_service(sandbox, namespace)
    port, metrics_port, name = free_port(), free_port(), f"gateway-{namespace}"
    with step(f"start the gateway stand-in for namespace {namespace} (routed by istiod's xDS; Envoy's forwarding "
              f"and stats emulated)"):
        sandbox.start(name, [sys.executable, "-m", "sandbox.gateway",
                             "--kubeconfig", str(sandbox.kubeconfig), "--port", str(port),
                             "--control", str(ensure_dir(sandbox.folder / "apps")),
                             "--metrics-port", str(metrics_port), "--namespace", namespace, "--xds-address", address])
        sandbox.wait(name, "an answer", http_answers(f"http://127.0.0.1:{port}/"))
        sandbox.wait(name, "its /metrics", http_ok(f"http://127.0.0.1:{metrics_port}/metrics"))
        add_scrape_target(sandbox.folder, name, metrics_port)
    return f"http://127.0.0.1:{port}"


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                name, _, value = words[1].partition("=")
                values[name] = value
    return values


def up(args: argparse.Namespace) -> int:
    env_file = Path(args.env_file)
    running = read_env_file(env_file).get("BLUEGREEN_SANDBOX")
    if running and Path(running).is_dir():
        raise Failure(f"{env_file} already names a sandbox ({running}): run "
                      f"`python -m sandbox down --env-file {env_file}` first")
    target = build_dir()
    if not (target / "complete.json").exists():
        raise Failure(f"the sandbox is not built (no {target}): run `python -m sandbox build`")
    folder = Path(tempfile.mkdtemp(prefix="bluegreen-sandbox-"))
    sandbox = Sandbox(folder, target / "bin")
    try:
        with step("make certificates, tokens and the Pulumi backend"):
            make_certificates(sandbox.pki)
            backend = ensure_dir(folder / "pulumi-state")
            passphrase = secrets.token_hex(16)
            (folder / "passphrase").write_text(passphrase)
        start_control_plane(sandbox, target / "share")
        istiod_env = start_istiod(sandbox)
        prometheus_env = start_prometheus(sandbox, free_port, http_ok)
        url = start_gateway(sandbox, args.gateway_namespace)
        home = ensure_dir(folder / "pulumi-home")
        with step("install the provider as a Pulumi plugin (in the sandbox's PULUMI_HOME)"):
            install_provider(sandbox.bin, home)
        env = {
            "PATH": f"{sandbox.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(sandbox.kubeconfig),
            "PULUMI_BACKEND_URL": f"file://{backend}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase,
            "PULUMI_HOME": str(home),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",  # the installed plugin, as a user has it; no PATH warning
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # The CLI's start-up allocates ~40 MB (password-strength tables): collecting less often makes a
            # short command such as `pulumi stack output` cost a fifth less CPU, for ~5 MB more memory.
            "GOGC": "400",
            "BLUEGREEN_SANDBOX": str(folder),
            "BLUEGREEN_URL": url,
            **istiod_env,
            **prometheus_env,
        }
        env_file.write_text("".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items()))
        env_file.chmod(0o600)
    except BaseException:
        stop_recorded(folder)
        shutil.rmtree(folder, ignore_errors=True)
        log("the sandbox did not start: every component it started is stopped again")
        raise
    log(f"ok   sandbox up in {folder}: source {env_file} to use it; "
        f"`python -m sandbox down --env-file {env_file}` stops it")
    return EXIT_OK


def down(args: argparse.Namespace) -> int:
    env_file = Path(args.env_file)
    folder = read_env_file(env_file).get("BLUEGREEN_SANDBOX")
    if not folder or not Path(folder).is_dir():
        log(f"ok   no sandbox running for {env_file}")
        env_file.unlink(missing_ok=True)
        return EXIT_OK
    with step(f"stop the sandbox in {folder}"):
        stopped = stop_recorded(Path(folder))
        shutil.rmtree(folder, ignore_errors=True)
        env_file.unlink(missing_ok=True)
    log(f"ok   stopped {', '.join(stopped) or 'nothing (no process was still running)'}; state removed")
    return EXIT_OK


