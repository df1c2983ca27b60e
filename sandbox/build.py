"""`python -m sandbox build`: the pinned pieces, built from their Go modules into a cache outside the repo.

Pieces: the Pulumi CLI and the Python language host, the pulumi-kubernetes provider, kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl, etcd and kwok, istiod (pilot-discovery) and istioctl,
Prometheus, and Istio's CRDs. Their versions are
pinned in one place each: the Go modules in sandbox/*/go.mod (checksums in go.sum), the Python
packages they must match in requirements.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bluegreen_tools.cli import EXIT_OK, Failure, log, step

from .istiod import check_version_file, version_ldflags

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "sandbox"  # one Go module per group of pieces: the pins
RECIPE = "4"  # bump when the build steps below change what they produce
BUILD_TIMEOUT = 45 * 60  # seconds for one `go build`; the largest piece took 11.5 min cold on 2 cores
FAILING_COMMAND = "false"  # a container command that kwok's pod-fail stage makes fail


# --- pins -----------------------------------------------------------------------------------------

def module_version(module: str, path: str) -> str:
    """The version sandbox/<module>/go.mod requires of `path`."""
    text = (MODULES / module / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(path)}\s+(v\S+)", text, re.M)
    if not found:
        raise Failure(f"sandbox/{module}/go.mod does not require {path}")
    return found.group(1)


def python_pin(name: str) -> str:
    """The version requirements.txt pins for a Python package."""
    found = re.search(rf"^{re.escape(name)}==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    if not found:
        raise Failure(f"requirements.txt pins no version of {name}")
    return found.group(1)


@dataclass(frozen=True)
class Piece:
    name: str
    module: str  # folder under sandbox/
    packages: tuple[str, ...]
    ldflags: tuple[str, ...] = ()
    tags: str = "osusergo,grpcnotrace"  # as Pulumi's release builds; kube builds with osusergo only
    # No inlining and no DWARF (which `-s -w` drops at link anyway): about a fifth less compile time, so a
    # cold build fits CI's limit with room; for the pieces that cost little CPU in a test run (OPTIMIZED below).
    gcflags: str = "all=-l -dwarf=false"


# The CLI and the control plane keep Go's inlining: the CLI starts hundreds of times in a test run, and its start-up
# is most of what a short command costs; the API server serves every test at once.
OPTIMIZED = "all=-dwarf=false"


def prometheus_release(module: str) -> str:
    """The Prometheus release a module version is: v0.316.0 is 3.16.0 (its VERSION file), as `--version` says it."""
    found = re.fullmatch(r"v0\.(\d+)(\d\d)\.(\d+)", module)
    if not found:
        raise Failure(f"sandbox/prometheus/go.mod requires github.com/prometheus/prometheus {module}, not a v0.3MM.P "
                      "module version (the 3.x releases): pin one the Go module proxy serves, e.g. v0.316.0")
    return f"{found.group(1)}.{int(found.group(2))}.{found.group(3)}"


def pieces() -> tuple[Piece, ...]:
    """What `build` makes, with the version each binary reports, from the pins."""
    cli = module_version("engine", "github.com/pulumi/pulumi/pkg/v3")
    if cli != "v" + python_pin("pulumi"):
        raise Failure(f"the Pulumi CLI (sandbox/engine/go.mod: pkg/v3 {cli}) and the Python pulumi package "
                      f"(requirements.txt: {python_pin('pulumi')}) must be one version: bump both together")
    kube = module_version("kube", "k8s.io/kubernetes")
    major, minor = kube.lstrip("v").split(".")[:2]
    sdk_version = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
    return (
        # With the CLI, from its module: the bridge in front of the language host (sandbox/engine/bridge says why)
        Piece("Pulumi CLI", "engine", ("github.com/pulumi/pulumi/pkg/v3/cmd/pulumi", "./bridge"),
              (f"-X {sdk_version}={cli}",), gcflags=OPTIMIZED),
        Piece("Python language host", "langhost", ("github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python",),
              (f"-X {sdk_version}={module_version('langhost', 'github.com/pulumi/pulumi/sdk/v3')}",)),
        Piece("pulumi-kubernetes provider", "provider", (".",),
              ("-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version="
               + python_pin("pulumi-kubernetes"),)),
        Piece("control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok)", "kube",
              ("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
               "k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes/cmd/kubectl", "sigs.k8s.io/kwok/cmd/kwok",
               "./etcd"),
              tuple(f"-X k8s.io/component-base/version.{name}={value}"
                    for name, value in (("gitVersion", kube), ("gitMajor", major), ("gitMinor", minor))),
              tags="osusergo", gcflags=OPTIMIZED),
        # Istio's own tags; its version variables set as Istio's Makefile sets them (sandbox/istiod.py)
        Piece("Istio's control plane (pilot-discovery, istioctl)", "istio",
              ("istio.io/istio/pilot/cmd/pilot-discovery", "istio.io/istio/istioctl/cmd/istioctl"),
              version_ldflags(module_version("istio", "istio.io/istio")), tags="vtprotobuf,disable_pgv"),
        # netgo as its release builds; not builtinassets: the web UI's assets are made by npm, and the HTTP API
        # the analysis queries does not need them. Cheap flags: it scrapes a few gateways once a second.
        Piece("Prometheus", "prometheus", ("github.com/prometheus/prometheus/cmd/prometheus",),
              ("-X github.com/prometheus/common/version.Version="
               + prometheus_release(module_version("prometheus", "github.com/prometheus/prometheus")),),
              tags="netgo"),
    )


# --- the build ------------------------------------------------------------------------------------

def cache_root() -> Path:
    if os.environ.get("BLUEGREEN_SANDBOX_CACHE"):
        return Path(os.environ["BLUEGREEN_SANDBOX_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bluegreen-sandbox"


def go_env() -> dict[str, str]:
    """The Go toolchain as the build uses it: the machine's own Go, static binaries, go.sum enforced."""
    return {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}


def go(args: Sequence[str], cwd: Path, timeout: float = 600) -> str:
    try:
        done = subprocess.run(["go", *args], cwd=cwd, env=go_env(), text=True, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise Failure("go is not on PATH: the sandbox is built with Go (1.26 or newer) and its module proxy") from None
    except subprocess.TimeoutExpired:
        raise Failure(f"`go {' '.join(args[:2])}` in {cwd} did not finish in {timeout:.0f}s") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise Failure(f"`go {shlex.join(args)}` in {cwd.relative_to(ROOT) if ROOT in cwd.parents else cwd} "
                      f"failed:\n{tail}")
    return done.stdout


def build_key() -> str:
    """What the build depends on: the modules' files (the bridge's source among them), the Python pins, this
    recipe, each piece's flags, how the assets are made (kwok's stages) and the Go version."""
    digest = hashlib.sha256(RECIPE.encode() + repr(pieces()).encode()
                            + inspect.getsource(copy_assets).encode() + inspect.getsource(kwok_stages).encode())
    for path in sorted(MODULES.rglob("*")):
        if path.is_file() and (path.suffix in (".go", ".mod", ".sum")):
            digest.update(str(path.relative_to(MODULES)).encode() + b"\0" + path.read_bytes())
    digest.update(f"pulumi=={python_pin('pulumi')} pulumi-kubernetes=={python_pin('pulumi-kubernetes')}".encode())
    digest.update(go(["version"], ROOT, timeout=60).encode())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    return cache_root() / build_key()


def module_dir(module: str, path: str) -> Path:
    """Where the Go module cache holds `path` at the version sandbox/<module> requires (downloading it)."""
    info = json.loads(go(["mod", "download", "-json", path], MODULES / module))
    if info.get("Error") or not info.get("Dir"):
        raise Failure(f"cannot download {path} for sandbox/{module}: {info.get('Error')}")
    return Path(info["Dir"])


def prepare_provider(work: Path) -> Path:
    """A copy of sandbox/provider with the two files its main embeds, made as the provider's
    `go generate` makes them: the schema with its version set, and the Terraform mapping, compacted."""
    source = work / "provider-src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(MODULES / "provider", source)
    cmd = module_dir("provider", "github.com/pulumi/pulumi-kubernetes/provider/v4") / "cmd" / "pulumi-resource-kubernetes"
    schema = json.loads((cmd / "schema.json").read_text())
    schema["version"] = python_pin("pulumi-kubernetes")
    (source / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
    mapping = json.loads((cmd / "terraform-mapping.json").read_text())
    (source / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))
    return source


def copy_assets(bin_dir: Path, share: Path) -> None:
    """The bridge in front of the language host (sandbox/engine/bridge says why) under the host's name, and
    the files that are not Go binaries: the host's executor script (from the sdk/v3 module at the CLI's
    version, matching the Python SDK), kwok's stage configs, Istio's CRDs."""
    host = bin_dir / "pulumi-language-python"
    host.rename(bin_dir / "pulumi-language-python-v3.68")  # the bridge starts it
    (bin_dir / "bridge").rename(host)
    sdk = module_dir("engine", "github.com/pulumi/pulumi/sdk/v3")
    executor = bin_dir / "pulumi-language-python-exec"
    shutil.copyfile(sdk / "python" / "cmd" / "pulumi-language-python-exec", executor)
    executor.chmod(0o755)
    (share / "kwok-stages.yaml").write_text(kwok_stages(module_dir("kube", "sigs.k8s.io/kwok") / "kustomize" / "stage"))
    istio = module_dir("assets", "istio.io/api") / "kubernetes" / "customresourcedefinitions.gen.yaml"
    shutil.copyfile(istio, share / "istio-crds.yaml")


def kwok_stages(stage_dir: Path) -> str:
    """kwok's own stages (nodes Ready with heartbeats; pods Ready, Job pods Succeeded, deletions done),
    plus two of the sandbox's: a Job pod whose command is `false` fails, as it would in a container,
    so a failing migration can be tested although no container runs; and a Running pod that the node
    controller marked not ready (its node's heartbeat lapsed while the API server was down) is made
    ready again, as a kubelet reports it once it reaches the API server (kwok's own stage only readies
    Pending pods, so such a pod would stay not ready for good)."""
    import yaml

    paths = [stage_dir / "node" / "fast" / "node-initialize.yaml", stage_dir / "node" / "heartbeat" / "node-heartbeat.yaml",
             *(stage_dir / "pod" / "fast" / f"pod-{name}.yaml" for name in ("ready", "complete", "delete"))]
    stages = [yaml.safe_load(path.read_text()) for path in paths]
    complete = next(stage for stage in stages if stage["metadata"]["name"] == "pod-complete")
    command = {"key": ".spec.containers.[0].command.[0]", "values": [FAILING_COMMAND]}
    fail = json.loads(json.dumps(complete))
    fail["metadata"]["name"] = "pod-fail"
    fail["spec"]["selector"]["matchExpressions"].append({**command, "operator": "In"})
    template = fail["spec"]["next"]["statusTemplate"]
    for old, new in (("exitCode: 0", "exitCode: 1"), ("reason: Completed", "reason: Error"),
                     ("phase: Succeeded", "phase: Failed")):
        if old not in template:
            raise Failure(f"kwok's pod-complete stage changed ({old!r} is gone): update sandbox.py's pod-fail stage")
        template = template.replace(old, new)
    fail["spec"]["next"]["statusTemplate"] = template
    complete["spec"]["selector"]["matchExpressions"].append({**command, "operator": "NotIn"})
    ready = next(stage for stage in stages if stage["metadata"]["name"] == "pod-ready")
    ready_again = json.loads(json.dumps(ready))
    ready_again["metadata"]["name"] = "pod-ready-again"
    selector = ready_again["spec"]["selector"]["matchExpressions"]
    phase = next((match for match in selector if match["key"] == ".status.phase"), None)
    if phase != {"key": ".status.phase", "operator": "In", "values": ["Pending"]}:
        raise Failure(f"kwok's pod-ready stage changed (it selects {phase}): update sandbox.py's pod-ready-again stage")
    phase["values"] = ["Running"]
    # Only the Ready condition, which is all the node controller takes away; kwok merges it by type into
    # the pod's status (its whole pod-ready status would give the pod a second IP, which is invalid).
    ready_again["spec"]["next"] = {"statusTemplate": "conditions:\n- lastTransitionTime: {{ Now | Quote }}\n"
                                                     "  message: null\n  reason: null\n  status: \"True\"\n  type: Ready\n"}
    return yaml.safe_dump_all([*stages, fail, ready_again], sort_keys=False)


def build(args: argparse.Namespace) -> int:
    target = build_dir()
    done_file = target / "complete.json"
    if done_file.exists():
        log(f"ok   sandbox build is up to date: {target}")
        return EXIT_OK
    work = Path(tempfile.mkdtemp(prefix="build-", dir=ensure_dir(cache_root())))
    bin_dir, share = ensure_dir(work / "bin"), ensure_dir(work / "share")
    try:
        check_version_file(module_dir("istio", "istio.io/istio"))
        for piece in pieces():
            log(f"...  build {piece.name} (sandbox/{piece.module})")
            with step(f"build {piece.name}"):
                cwd = prepare_provider(work) if piece.module == "provider" else MODULES / piece.module
                out = bin_dir / "pulumi-resource-kubernetes" if piece.module == "provider" else bin_dir
                go(["build", "-trimpath", "-tags", piece.tags, "-gcflags", piece.gcflags, "-ldflags",
                    " ".join(("-s", "-w", *piece.ldflags)), "-o", f"{out}{'' if out != bin_dir else os.sep}",
                    *piece.packages], cwd, timeout=BUILD_TIMEOUT)
        with step("install the language host's bridge and executor, kwok's stages and Istio's CRDs"):
            copy_assets(bin_dir, share)
        shutil.rmtree(work / "provider-src", ignore_errors=True)
        (work / "complete.json").write_text(json.dumps({"binaries": sorted(p.name for p in bin_dir.iterdir())}))
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"ok   sandbox built: {target}")
    return EXIT_OK


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


