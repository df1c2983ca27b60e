"""istiod in the sandbox (sandbox/istiod.py), without a build: its webhook registration, mesh config, command
line, certificates and version flags."""

from __future__ import annotations

import base64
import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sandbox import build, istiod

PORTS = istiod.Ports(grpc=15010, http=8080, https=15017, monitoring=15014, ctrlz=9876)


def test_the_webhook_refuses_networking_and_security_objects_when_istiod_cannot_answer():
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    config = istiod.webhook_configuration("https://127.0.0.1:15017/validate", ca)
    [hook] = config["webhooks"]
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:15017/validate", "caBundle": base64.b64encode(ca).decode()}
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    [rule] = hook["rules"]
    assert {"networking.istio.io", "security.istio.io"} <= set(rule["apiGroups"])
    assert rule["operations"] == ["CREATE", "UPDATE"] and rule["resources"] == ["*"]
    assert "objectSelector" not in hook  # every Istio object, not only those labeled with a revision
    # istiod's webhook controller looks after the configurations with its revision's label (it keeps the CA bundle).
    assert config["metadata"]["labels"]["istio.io/rev"] == istiod.REVISION


def test_the_mesh_config_is_the_configmap_istiod_reads_and_points_proxies_at_the_plaintext_xds_port():
    configmap = istiod.mesh_configmap(PORTS)
    assert (configmap["metadata"]["name"], configmap["metadata"]["namespace"]) == ("istio", "istio-system")
    mesh = yaml.safe_load(configmap["data"]["mesh"])
    assert mesh["defaultConfig"]["discoveryAddress"] == "127.0.0.1:15010"
    assert mesh["rootNamespace"] == "istio-system"


def flags(argv: list[str]) -> dict[str, str]:
    start = argv.index("discovery") + 1
    return dict(zip(argv[start::2], argv[start + 1::2]))


def test_istiod_listens_on_loopback_only_and_serves_the_webhook_with_the_given_certificate(tmp_path):
    argv = istiod.argv(Path("/bin/pilot-discovery"), PORTS, tmp_path, tmp_path / "kubeconfig")
    given = flags(argv)
    for flag, port in (("--grpcAddr", 15010), ("--httpAddr", 8080), ("--httpsAddr", 15017),
                       ("--monitoringAddr", 15014)):
        assert given[flag] == f"127.0.0.1:{port}"
    assert given["--secureGRPCAddr"] == ""  # else istiod opens 15012 on every address
    assert (given["--ctrlz_address"], given["--ctrlz_port"]) == ("127.0.0.1", "9876")
    assert given["--tlsCertFile"] == str(tmp_path / "tls.crt") and given["--caCertFile"] == str(tmp_path / "ca.crt")
    assert given["--kubeconfig"] == str(tmp_path / "kubeconfig")


def test_the_recorded_command_carries_istiods_environment_so_a_restart_has_it_too(tmp_path):
    argv = istiod.argv(Path("/bin/pilot-discovery"), PORTS, tmp_path, tmp_path / "kubeconfig")
    assert argv[0] == istiod.ENV
    env = dict(word.split("=", 1) for word in argv[1:argv.index("/bin/pilot-discovery")])
    assert env["POD_NAMESPACE"] == "istio-system" and env["REVISION"] == "default"
    assert env["KUBECONFIG"] == str(tmp_path / "kubeconfig")
    # The same env line runs istiod: `env` is found where the recorded argv names it.
    assert subprocess.run([istiod.ENV, *argv[1:argv.index("/bin/pilot-discovery")], "true"]).returncode == 0


def test_the_webhook_certificate_is_valid_for_127_0_0_1_under_istiods_own_ca(tmp_path):
    istiod.make_certificates(tmp_path)
    ssl.create_default_context().load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")  # key and cert match
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes()))
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0


def test_the_probe_is_refused_by_istios_webhook_whatever_its_spec():
    probe = istiod.probe_gateway()
    assert probe["metadata"]["annotations"] == {"internal.istio.io/webhook-always-reject": "true"}
    assert probe["metadata"]["namespace"] == "istio-system"


def test_istiod_reports_the_istio_version_and_the_pinned_commit():
    pin = build.module_version("istio", "istio.io/istio")
    ldflags = " ".join(istiod.version_ldflags(pin))
    assert f"pkg/version.buildVersion={istiod.ISTIO_VERSION}" in ldflags
    assert f"pkg/version.buildGitRevision={pin.rsplit('-', 1)[-1]}" in ldflags


def test_a_pin_of_another_istio_version_asks_for_istio_version_to_move(tmp_path):
    (tmp_path / "VERSION").write_text("1.33\n")
    with pytest.raises(istiod.Failure, match="VERSION file says '1.33-dev'.*set ISTIO_VERSION to '1.33-dev'"):
        istiod.check_version_file(tmp_path)
    (tmp_path / "VERSION").write_text(istiod.ISTIO_VERSION.removesuffix("-dev") + "\n")
    istiod.check_version_file(tmp_path)


def test_a_build_without_istiod_is_refused_with_the_command_that_builds_it(tmp_path):
    sandbox = SimpleNamespace(bin=tmp_path, folder=tmp_path)
    with pytest.raises(istiod.Failure, match=r"the build has no istiod; run `python -m sandbox build`"):
        istiod.start_istiod(sandbox)
