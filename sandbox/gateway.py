#!/usr/bin/env python3
"""The sandbox's ingress gateway stand-in: it routes by the Envoy config istiod pushes; it is not Envoy.

    python -m sandbox.gateway --kubeconfig FILE --port PORT --control DIR [--namespace NS]
                              [--metrics-port PORT] [--xds-address HOST:PORT]

No container runs in the sandbox (kwok marks pods ready) and no Envoy exists here, so this one
process plays three parts:
- the ingress gateway's Envoy on 127.0.0.1:PORT: an xDS client of istiod (sandbox/xds.py), connected as
  the `istio: ingressgateway` router of namespace NS, routing each request by the listeners, routes,
  clusters and endpoints istiod pushed last (sandbox/xds_gateway.py). Istio's translation of the
  project's objects is real; Envoy's matching and forwarding are EMULATED (sandbox/envoy_routes.py).
- the app stand-ins (sandbox/apps.py): one HTTP server per Deployment, playing its pods; a test tells
  one how to answer through DIR/<namespace>/<deployment>.json.
- Envoy's stats (sandbox/telemetry.py): every request it routes, or answers itself with NR or UH, is
  counted in Istio's standard metrics, `istio_requests_total` and `istio_request_duration_milliseconds`,
  with the labels an Istio ingress gateway reports (reporter="source"), at
  http://127.0.0.1:METRICS_PORT/metrics when --metrics-port is given; the sandbox's Prometheus scrapes it.
One gateway per namespace (istiod runs with PILOT_SCOPE_GATEWAY_TO_NAMESPACE): projects sharing one
sandbox (the e2e tests) do not answer for each other's hosts.
Exit status: 0 stopped by a signal, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from sandbox.apps import Apps
from sandbox.telemetry import Telemetry
from sandbox.xds import AdsClient
from sandbox.xds_gateway import gateway_node, xds_handler

REFRESH_SECONDS = 0.5  # how stale the gateway's view of the pods may be


class Pods:
    """The pods of a namespace (all namespaces without one), listed through the API server's REST API with
    the sandbox's kubeconfig: where an endpoint istiod names (a pod IP) is mapped to its app stand-in."""

    def __init__(self, kubeconfig: Path, namespace: Optional[str] = None):
        self.path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.token = config["users"][0]["user"]["token"]
        self.items: list[dict[str, Any]] = []
        self.read_at = 0.0
        self.lock = threading.Lock()

    def listed(self) -> list[dict[str, Any]]:
        """The pods, re-read if the last read is older than REFRESH_SECONDS. While the API server cannot be
        read, the last list stands: Envoy's data plane does not depend on the API server (a first read raises)."""
        with self.lock:
            if time.monotonic() - self.read_at >= REFRESH_SECONDS:
                request = urllib.request.Request(self.server + self.path,
                                                 headers={"Authorization": f"Bearer {self.token}"})
                try:
                    with urllib.request.urlopen(request, timeout=2, context=self.context) as answer:
                        self.items = json.load(answer).get("items") or []
                except (OSError, ValueError):
                    if not self.read_at:
                        raise
                self.read_at = time.monotonic()
            return self.items


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int, help="the gateway's port on 127.0.0.1")
    parser.add_argument("--control", required=True, type=Path, help="folder of the app stand-ins' behaviour files")
    parser.add_argument("--namespace", help="the namespace whose Gateways it serves (default: istio-system's)")
    parser.add_argument("--metrics-port", type=int, help="serve Istio's metrics at 127.0.0.1:PORT/metrics")
    parser.add_argument("--xds-address", default=os.environ.get("BLUEGREEN_ISTIOD_XDS"),
                        help="istiod's plaintext xDS address host:port (default $BLUEGREEN_ISTIOD_XDS)")
    args = parser.parse_args(argv)
    if not args.xds_address:
        parser.error("the gateway needs istiod's address: pass --xds-address HOST:PORT or set "
                     "BLUEGREEN_ISTIOD_XDS (the sandbox's env file has it)")
    pods = Pods(args.kubeconfig, args.namespace)
    telemetry = Telemetry() if args.metrics_port else None
    if telemetry is not None:
        telemetry.serve(args.metrics_port)
    client = AdsClient(args.xds_address, gateway_node(args.namespace).node(),
                       log=lambda line: print(line, file=sys.stderr, flush=True)).start()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), xds_handler(client, pods.listed, Apps(args.control),
                                                                       telemetry))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"sandbox gateway (routing by istiod's xDS at {args.xds_address}) on http://127.0.0.1:{args.port}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
