#!/usr/bin/env python3
"""The sandbox's `pulumi-language-python`: the real Python language host, with one request mended.

    pulumi-language-python ENGINE_ADDRESS [flags]   (started by the Pulumi CLI, never by hand)

The only Python language host the Go module proxy serves is the one in `sdk/v3` v3.68.0, older than
the v3.260.0 CLI. One call does not survive the gap: since the host became a module of its own, the
CLI sends RunPlugin (how it starts a Python policy pack) with the pack's folder in `info` and no
`program`; the old host runs `python ""` in the project's folder, that is, the project's own
`__main__.py`, and `pulumi preview --policy-pack` fails. This bridge starts the real host (built
beside it as `pulumi-language-python-v3.68`), forwards every call to it byte for byte, and fills
RunPlugin's `program` from `info.program_directory`, as newer hosts read it. Nothing else changes;
the real host does all the work. It runs on the Python on PATH, which must have `pulumi` (the
project's virtualenv, activated): the old host takes Python from PATH for programs too.
Exit status: that of the real host; 1 when it cannot be started.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import signal
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

REAL_HOST = Path(__file__).resolve().parent / "pulumi-language-python-v3.68"
SERVICE = "pulumirpc.LanguageRuntime"
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the real host's process: SIGTERM it when the bridge dies (the CLI kills plugins with SIGKILL)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def language_pb2():
    """The SDK's generated `language_pb2`, without running `pulumi/__init__` (the whole SDK: 0.2 s of CPU
    at each of the two host starts of every `pulumi up`): its folder imported as a package of its own."""
    name = "bridge_proto"
    if name not in sys.modules:
        sdk = importlib.util.find_spec("pulumi")
        if sdk is None or not sdk.submodule_search_locations:
            raise ImportError("No module named 'pulumi'")
        package = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(name, None, is_package=True))
        package.__path__ = [str(Path(sdk.submodule_search_locations[0]) / "runtime" / "proto")]
        sys.modules[name] = package
    return importlib.import_module(f"{name}.language_pb2")


def mend(method: str, request: bytes) -> bytes:
    """A request as the old host reads it: RunPlugin with `program` filled from `info`; others as they are."""
    if method != "RunPlugin":
        return request
    message = language_pb2().RunPluginRequest.FromString(request)
    if not message.program and message.info.program_directory:
        message.program = message.info.program_directory
    return message.SerializeToString()


def main(argv: list[str]) -> int:
    try:
        import grpc
        methods = language_pb2().DESCRIPTOR.services_by_name["LanguageRuntime"].methods
    except ImportError as error:
        print(f"pulumi-language-python (sandbox bridge): {error}: run with the project's virtualenv activated "
              "(. venv/bin/activate)", file=sys.stderr)
        return 1
    host = subprocess.Popen([str(REAL_HOST), *argv], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=die_with_parent)
    port = (host.stdout.readline() if host.stdout else "").strip()
    if not port.isdigit():
        print(f"pulumi-language-python (sandbox bridge): {REAL_HOST} gave no port ({port!r})", file=sys.stderr)
        return host.wait() or 1
    # Anything more the host prints goes to stderr (the CLI's log), so a full pipe never blocks it.
    threading.Thread(target=lambda: sys.stderr.writelines(host.stdout), daemon=True).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=UNLIMITED)

    def forward(method):
        streaming = method.server_streaming  # InstallDependencies and RunPlugin; the rest are unary
        call = (channel.unary_stream if streaming else channel.unary_unary)(f"/{SERVICE}/{method.name}")

        def unary(request: bytes, context):
            try:
                return call(mend(method.name, request))
            except grpc.RpcError as error:
                context.abort(error.code(), error.details())

        def stream(request: bytes, context):
            try:
                yield from call(mend(method.name, request))
            except grpc.RpcError as error:
                context.abort(error.code(), error.details())

        return grpc.unary_stream_rpc_method_handler(stream) if streaming else grpc.unary_unary_rpc_method_handler(unary)

    handlers = {method.name: forward(method) for method in methods}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=UNLIMITED)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    own_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(own_port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: host.terminate())
    signal.signal(signal.SIGINT, lambda *_: host.send_signal(signal.SIGINT))
    code = host.wait()
    server.stop(grace=1)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
