"""The sandbox's Prometheus (built from github.com/prometheus/prometheus): it scrapes the gateway stand-ins' metrics.

`start_prometheus` starts it on 127.0.0.1 (a free port), recorded as `prometheus` in the sandbox's pids/ so that
`down` stops it, with its config and storage in the sandbox folder's prometheus/. It scrapes every second (so a
test sees a request in Prometheus within about two seconds) the targets listed in prometheus/targets/*.json
(file-based service discovery): each gateway stand-in `start_gateway` starts adds its own file there, and
`stop_recorded` removes it with the gateway, so the per-namespace gateways of the e2e projects are scraped too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import yaml

from bluegreen_tools.cli import step

if TYPE_CHECKING:
    from .cluster import Sandbox

SCRAPE_INTERVAL = "1s"
READY_TIMEOUT = 60.0  # seconds for /-/ready; it answered within 5 s when tried, idle
JOB = "istio-gateways"


def targets_dir(folder: Path) -> Path:
    return folder / "prometheus" / "targets"


def prometheus_config(folder: Path) -> dict:
    """Scrape the gateways listed in the targets folder every SCRAPE_INTERVAL; the folder is watched, and
    re-read every second as well, so a new gateway is scraped at once."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                   "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics", "file_sd_configs": [
            {"files": [str(targets_dir(folder) / "*.json")], "refresh_interval": SCRAPE_INTERVAL}]}],
    }


def prometheus_argv(folder: Path, port: int) -> list[str]:
    home = folder / "prometheus"
    return ["prometheus", f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d", "--log.level=warn"]


def add_scrape_target(folder: Path, name: str, port: int) -> None:
    """List a process's /metrics at 127.0.0.1:PORT; written whole (a temp file, then a rename), since
    Prometheus reads the folder while it changes."""
    directory = targets_dir(folder)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{name}.json.tmp"  # outside the *.json pattern until renamed
    temporary.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"sandbox_process": name}}]))
    os.replace(temporary, directory / f"{name}.json")


def remove_scrape_target(folder: Path, name: str) -> None:
    (targets_dir(folder) / f"{name}.json").unlink(missing_ok=True)


def start_prometheus(sandbox: "Sandbox", free_port: Callable[[], int],
                     ready: Callable[[str], Callable[[], bool]]) -> dict[str, str]:
    """Start Prometheus and wait for its /-/ready: the environment that names it (BLUEGREEN_PROMETHEUS_URL)."""
    port = free_port()
    home = sandbox.folder / "prometheus"
    targets_dir(sandbox.folder).mkdir(parents=True, exist_ok=True)
    (home / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(sandbox.folder), sort_keys=False))
    url = f"http://127.0.0.1:{port}"
    with step(f"start Prometheus (scraping the gateway stand-ins every {SCRAPE_INTERVAL})"):
        sandbox.start("prometheus", prometheus_argv(sandbox.folder, port))
        sandbox.wait("prometheus", "/-/ready", ready(f"{url}/-/ready"), timeout=READY_TIMEOUT)
    return {"BLUEGREEN_PROMETHEUS_URL": url}
