"""The world release.py acts on, for its end-to-end tests: stacks behind a stand-in `pulumi`, and a gateway.

The stand-in (fake_pulumi.py, first on PATH) keeps the stacks in one state file. The gateway is a real
HTTP server on 127.0.0.1 that routes each request the way the deployed VirtualService would: it
builds the routes with the program's own `http_routes` from the routing stack's outputs (so only
what `pulumi up -s routing` deployed counts, not config set since) and picks one with
`select_route`, Istio's rule. The color that request reaches answers as that app is told to behave.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
import time
from dataclasses import replace
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from bluegreen_tools.cli import Session, run_main
from harness import fake_kubectl, fake_pulumi
from harness.loopback import answer, ready
from components.contract import ColorOutputs, RoutingOutputs, deployment_name
from components.routes import http_routes, route_color, select_route
from components.settings import RoutingSettings, declared_defaults, parse_cookie

FAKE = Path(__file__).resolve().parent / "fake_pulumi.py"
PHASE_PATH = {"promote": ("taken", "testing", "flipping", "checking"), "rollback": ("taken", "flipping"),
              "decommission": ("taken",)}
ROOT = FAKE.parents[2]  # the project: the stand-in imports components.contract; Pulumi.yaml holds the defaults
LOCK_VALUE = re.compile(r"^(blue|green) (\S+) \S+@\S+ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ pid=\d+ id=[0-9a-f]{8}$")


def color_outputs(color: str, release: str, ready_replicas: int = 2) -> dict[str, Any]:
    return ColorOutputs(color=color, release=release, image=f"registry.example.com/myapp:{release}",
                        deployment=deployment_name("myapp", color), replicas=2,
                        ready_replicas=ready_replicas).exported()


class World:
    """Blue live on v1, green deployed and ready on v2, no test route, no lock: the usual start."""

    def __init__(self, directory: Path):
        self.state_file = directory / "pulumi-state.marshal"
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        executable = bin_dir / "pulumi"
        # SIGINT kills it silently until fake_pulumi takes over, as it does the CLI: on a busy machine the
        # time limit's SIGINT can arrive while it still imports.
        # -I: isolated from the caller's PYTHONPATH and user site; the harness comes from the project's install.
        executable.write_text(f"#!{sys.executable} -I\nimport _signal, sys\n"
                              "_signal.signal(_signal.SIGINT, _signal.SIG_DFL)\n"
                              "from harness import fake_pulumi\nsys.exit(fake_pulumi.main(sys.argv[1:]))\n")
        executable.chmod(0o755)
        kubectl = bin_dir / "kubectl"  # the release record's Lease, in the stand-in's state file
        kubectl.write_text(f"#!{sys.executable} -I\nimport sys\nfrom harness import fake_kubectl\n"
                           "sys.exit(fake_kubectl.main(sys.argv[1:]))\n")
        kubectl.chmod(0o755)
        self.leases_file = directory / "leases.json"
        self.path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        self.save({
            "stacks": {
                "routing": {"config": {"active": "blue"}, "outputs": {}, "tags": {}},
                "blue": {"config": {"color": "blue"}, "outputs": color_outputs("blue", "v1"), "tags": {}},
                "green": {"config": {"color": "green"}, "outputs": color_outputs("green", "v2"), "tags": {}},
            },
            # `config get` answers a key not set on the stack with Pulumi.yaml's default, even an empty one
            # (testToken), as the real CLI does (tests/e2e/test_cli_contract.py holds the two together).
            "defaults": {key: value for key, value in declared_defaults(ROOT / "Pulumi.yaml").items()
                         if isinstance(value, str)},
            "apps": {"blue": "healthy", "green": "healthy"},
            "calls": [],
            "hooks": [],
        })
        self.deploy_routing()

    def state(self) -> dict[str, Any]:
        return fake_pulumi.load(str(self.state_file))

    def save(self, state: dict[str, Any]) -> None:
        fake_pulumi.save(str(self.state_file), state)

    def change(self, edit) -> None:
        state = self.state()
        edit(state)
        self.save(state)

    def deploy_routing(self) -> None:
        """What `pulumi up -s routing` deployed, set up without recording a call."""
        self.change(lambda state: fake_pulumi.routing_up(state, state["stacks"]["routing"]))

    def hook(self, when: str, skip: int = 0, fail: Optional[str] = None, patch: Optional[dict] = None,
             **fault: Any) -> None:
        """Make the next command that starts with `when` (after `skip` of them) fail, or change the stacks after it,
        or misbehave as `fault` says (fake_pulumi._fault: hang=seconds, kill=True, stdout=text, after, interrupt)."""
        hook = {"when": when, "skip": skip, **({"fail": fail} if fail else {"patch": patch or {}}), **fault}
        self.change(lambda state: state["hooks"].append(hook))

    def wait_hanging(self, limit: float = 30.0) -> dict[str, Any]:
        """Wait until a command hangs on a hang hook (its pid and arguments): the moment to signal."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            hanging = self.state().get("hanging")
            if hanging:
                return hanging
            time.sleep(0.02)
        raise AssertionError("no pulumi command hung")

    def users_on_a_ready_color(self) -> bool:
        """What the routing stack deployed sends users to a color that is deployed and ready."""
        state = self.state()
        active = RoutingOutputs.read(state["stacks"]["routing"]["outputs"]).active
        target = ColorOutputs.read(state["stacks"].get(active or "", {}).get("outputs", {}))
        return target.color == active and bool(target.ready_replicas)

    # --- the release record (the stand-in kubectl's Lease) -----------------------------------------------

    def store(self):
        """The release record's store, as release.py finds it (app myapp, namespace default)."""
        from bluegreen_tools.record import LeaseStore
        return LeaseStore(fake_kubectl.stand_in(self.leases_file, FAKE_KUBECTL_FAULT=""), "default", "myapp")

    def lease(self):
        """The record's Lease as another host would read it, or None."""
        return self.store().read()

    def record_free(self) -> bool:
        """No release holds the record (none was ever taken, or the last was given back)."""
        lease = self.lease()
        return lease is None or lease.free

    def hold_record(self, kind: str = "promote", color: str = "green", release: str = "v2", phase: str = "taken",
                    who: str = "alice@ci-7", before: tuple[str, Optional[str]] = ("blue", None),
                    previous_release: str = "v1", expired: bool = False):
        """A release record held by another run (in `phase`; its lease `expired`: its run is gone)."""
        from bluegreen_tools.record import ReleaseRecord, Routing
        store = self.store()
        record = replace(ReleaseRecord.new(kind, "routing", color, release, Routing(*before), previous_release,
                                           who=who), pid=4242)  # another machine's process
        lease = store.take(record)
        path = PHASE_PATH[kind]
        for step in path[1:path.index(phase) + 1] if phase in path else (*path[1:], phase):
            lease = store.write(lease, lease.record.moved(step))
        if expired:
            fake_kubectl.age(self.leases_file, "default", "myapp-release", store.duration + 1)
        return self.lease()

    def went_live(self, color: str, release: str, previous: str, previous_release: str) -> None:
        """The record says that `color` went live on `release`, users being on `previous` before (as a finished
        promote leaves it): what rollback goes back from."""
        from bluegreen_tools.record import ReleaseRecord, Routing
        store = self.store()
        lease = store.take(ReleaseRecord.new("promote", "routing", color, release, Routing(previous), previous_release,
                                             who="alice@ci-7"), store.read())
        store.finish(lease, lease.record.moved("done"), went_live=True)

    def calls(self) -> list[str]:
        """Every pulumi command run, as text, with the lock's value (who, when) shown as <lock>."""
        shown = []
        for args in self.state()["calls"]:
            if args[:3] == ["stack", "tag", "set"]:
                assert LOCK_VALUE.match(args[4]), args[4]
                args = args[:4] + ["<lock>"] + args[5:]
            shown.append(" ".join(args))
        return shown

    def config(self) -> dict[str, dict[str, str]]:
        return {name: stack["config"] for name, stack in self.state()["stacks"].items()}

    def outputs(self, stack: str) -> dict[str, Any]:
        return self.state()["stacks"][stack]["outputs"]

    def tags(self) -> dict[str, str]:
        return self.state()["stacks"]["routing"]["tags"]

    # --- the gateway ------------------------------------------------------------------------------

    def gateway(self, path: str, headers: dict[str, str]):
        """How the app behind the route answers (state["apps"][color]): healthy; unready ("ready":
        false); broken (500); fails-for-users (healthy through the test route, 500 through the
        default one, as an app that breaks under real traffic)."""
        state = self.state()
        routing = state["stacks"]["routing"]
        deployed = RoutingOutputs.read(routing["outputs"])
        if not deployed.active:
            return answer(404, None, b"")  # no VirtualService: the gateway's 404 NR
        settings = RoutingSettings(
            stack="routing", app="myapp", namespace="default", active=deployed.active, test=deployed.test,
            test_cookie=parse_cookie(routing["deployed_cookie"]), hosts=("*",),
            color_stacks={"blue": "blue", "green": "green"})
        route = select_route(http_routes(settings), headers, path)
        color = route_color(route)
        if not ColorOutputs.read(state["stacks"][color]["outputs"]).ready_replicas:
            return answer(503, color, b"no healthy upstream")
        mode = state["apps"][color]
        if mode == "broken" or (mode == "fails-for-users" and route["name"].endswith("-default")):
            return answer(500, color, b"internal error")
        if path == "/ready":
            return ready(color, value=mode != "unready")
        return answer(200, color)


# --- the stand-in without a process start, for the fault matrix --------------------------------------

class InProcess:
    """A pulumi command run by the stand-in in this process: what release.py reads of a Popen of it (the
    same code, state file and hooks), without the cost of starting Python for every command."""

    pid = None

    def __init__(self, command: Sequence[str], stream: bool):
        self.args, self.stream = list(command[1:]), stream
        self.returncode: Optional[int] = None

    def communicate(self, timeout: Optional[float] = None) -> tuple[Optional[str], str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            self.returncode = fake_pulumi.main(self.args)
        if self.stream:  # stdout went to the terminal's stderr
            sys.stderr.write(out.getvalue())
            return None, err.getvalue()
        return out.getvalue(), err.getvalue()

    def send_signal(self, signum: int) -> None:
        pass  # it has finished before anything could signal it

    def poll(self) -> Optional[int]:
        return self.returncode


def mostly_in_process(real: Callable, state_file: Path) -> Callable:
    """release.runner.popen for the tests of release.py in-process: a command that a hang or kill hook waits for
    runs as a real process (to be timed out, signalled, killed), every other one in this process."""
    def popen(command: Sequence[str], stream: bool):
        state = fake_pulumi.load(str(state_file))
        line = " ".join(command[1:])
        hook = next((h for h in state["hooks"] if line.startswith(h["when"])), None)
        if hook is not None and not hook.get("skip", 0) and ("hang" in hook or "kill" in hook):
            return real(command, stream)
        return InProcess(command, stream)
    return popen


def in_boundary(main: Callable[..., int], argv: Sequence[str], script: str = "release") -> int:
    """A script's main in-process, as its command line runs it: inside the error boundary, with one session."""
    session = Session(script)
    return run_main(lambda: main(list(argv), session), session)


def enter(world: World, monkeypatch, popen: Callable) -> None:
    """Point this test's environment at `world` (its stand-in `pulumi` and `kubectl` first on PATH, no token or
    URL from the caller) and run the stand-in's commands in this process (`popen`: release.runner.popen)."""
    from bluegreen_tools.release import runner
    for name, value in {"PATH": world.path, "FAKE_PULUMI_STATE": str(world.state_file),
                        "FAKE_KUBECTL_STATE": str(world.leases_file)}.items():
        monkeypatch.setenv(name, value)
    for name in ("BLUEGREEN_TEST_TOKEN", "BLUEGREEN_URL", "BLUEGREEN_PROMETHEUS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runner, "popen", mostly_in_process(popen, world.state_file))
    from bluegreen_tools.record.kubectl import Kubectl
    monkeypatch.setattr(Kubectl, "_run", kubectl_in_process(Kubectl._run))


_KUBECTL = threading.Lock()  # one in-process kubectl at a time: each swaps this process's stdout and stderr


def kubectl_in_process(real: Callable) -> Callable:
    """Kubectl._run for the tests of release.py in-process: release.py's `kubectl` calls run the stand-in (found
    first on PATH as a process otherwise) in this process, on the same state file, without a Python start each;
    a stand-in told to hang, and every other command, still runs as a process."""
    from bluegreen_tools.record.kubectl import Done

    def run(self, argv: list[str], env) -> "Done":
        if tuple(self.command) != ("kubectl",) or env.get("FAKE_KUBECTL_FAULT") == "hang":
            return real(self, argv, env)
        out, err = io.StringIO(), io.StringIO()
        with _KUBECTL, redirect_stdout(out), redirect_stderr(err):
            code = fake_kubectl.main(argv[len(self.command):])
        return Done(code, out.getvalue(), err.getvalue())
    return run

