"""Istio's and Kubernetes' rules for the values this program writes into objects, mirrored here.

`pulumi up` and the offline plan refuse a value before anything is declared, instead of the API server or
Istio's validating webhook (istio/istio pkg/config/validation) refusing an object half-way through an update.
Each rule names the upstream rule it mirrors. Pure functions: a rule returns the problem, the caller the message.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Any, Callable, Optional

from .domain import Cookie, SettingsError, show

# Every pattern ends in \Z, not $: `$` also matches before a trailing newline.
# Kubernetes apimachinery validation.IsDNS1035Label: what a Service name must be.
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
# Kubernetes validation.IsDNS1123Label (at most 63 characters): what a namespace name must be.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
MAX_LABEL_LENGTH = 63  # Kubernetes validation.DNS1123LabelMaxLength, and LabelValueMaxLength
# Kubernetes validation.IsDNS1123Subdomain (at most 253 characters): what a Secret name must be.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
MAX_SUBDOMAIN_LENGTH = 253
# Kubernetes validation.IsValidLabelValue: a pod label's value (release), at most 63 characters.
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
# Kubernetes validation.IsEnvVarName is wider; a POSIX shell name is what every app can read.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# Pulumi's stack names (tokens.ValidateStackName), with up to two `org/project/` parts.
STACK_NAME = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+\Z")
# RFC 6265 section 4.1.1: a cookie name is an HTTP token; a value is cookie-octets (no space, DQUOTE, comma,
# semicolon, backslash).
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+\Z")

# distribution/reference (reference.go's grammar): [domain[:port]/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?\Z",
    re.ASCII,  # a tag is ASCII: \w must not take other scripts' letters
)
MAX_IMAGE_LENGTH = 255  # distribution/reference NameTotalLengthMax
# OCI image-spec descriptor.md ("Registered algorithms": sha256, sha512) and opencontainers/go-digest (sha384):
# a digest's algorithm and the length of its lowercase hex, which registries and runtimes enforce.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

MAX_HOST_LENGTH = 253  # Istio: agent.CheckDNS1123Preconditions refuses over 255; a DNS name is at most 253 (RFC 1035)
MAX_HOST_LABEL = 63  # Istio: labels.IsDNS1123Label / IsWildcardDNS1123Label (DNS1123LabelMaxLength)
MAX_ISTIO_REGEX = 1024  # Istio: validateStringRegexp, "regex is too large, max length allowed is 1024"
# Istio's "Application Requirements" (ports used by Istio: "applications should not use any of the ports used by
# Envoy") and pilot/cmd/pilot-agent/status/server.go istioReservedPorts; 15009 is HBONE's in ambient mode.
ISTIO_RESERVED_PORTS = {
    15000: "Envoy's admin port", 15001: "Envoy's outbound traffic capture", 15002: "failure detection",
    15004: "the debug port", 15006: "Envoy's inbound traffic capture", 15008: "the HBONE mTLS tunnel",
    15009: "HBONE in ambient mode", 15020: "the merged Prometheus telemetry", 15021: "the health checks",
    15053: "the DNS proxy", 15090: "Envoy's Prometheus telemetry",
}

# Kubernetes resource.Quantity (apimachinery quantity.go): <number><suffix>, where the suffix is binary SI (Ki..Ei),
# a decimal exponent (e3, E-2) or decimal SI (m, k..E). `E` alone is exa: an exponent needs its digits.
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                       r"(?:(?P<binary>[KMGTPE]i)|(?P<exponent>[eE][-+]?[0-9]{1,3})|(?P<decimal>[mkMGTPE]))?\Z")
_QUANTITY_SCALE = {"": 1, "m": Decimal("0.001"), **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
                   **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")}}

# Istio reads a duration with Go's time.ParseDuration (the legacy jsonpb decoder of google.protobuf.Duration), and the
# CRD's CEL rule `duration(self) >= duration('1ms')` with the same grammar: [+-] then numbers with units, each number
# with a digit before or after its dot (.5s, 1.s); `0` alone needs no unit. Units longest first, so ms is not m then s.
_DURATION = re.compile(r"^[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|h|m|s))+\Z|^[-+]?0\Z")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|h|m|s)")
_DURATION_MS = {"h": Decimal(3_600_000), "m": Decimal(60_000), "s": Decimal(1000), "ms": Decimal(1),
                "us": Decimal("0.001"), "\u00b5s": Decimal("0.001"), "\u03bcs": Decimal("0.001"),
                "ns": Decimal("0.000001")}
# Go's time.Duration is an int64 of nanoseconds: ParseDuration refuses more ("invalid duration"), about 106751 days.
MAX_GO_DURATION_MS = Decimal(2**63 - 1) / 1_000_000
# The longest object name the program declares is Job `<app>-green-migrate` (also its pods' `job-name` label value),
# which Kubernetes holds to a 63-character label: 63 - len("-green-migrate") = 49.
MAX_APP_LENGTH = MAX_LABEL_LENGTH - len("-green-migrate")
# Istio's validation.validateRetryOn: Envoy's x-envoy-retry-on, then x-envoy-retry-grpc-on, conditions.
RETRY_ON = ("5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
            "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
            "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
            "unavailable")
# validateHTTPRetry also takes an HTTP status code that Go's net/http.StatusText names (strconv.Atoi: an optional
# sign, digits), which Istio turns into Envoy's retriable_status_codes (adding retriable-status-codes).
HTTP_STATUS_CODES = frozenset([100, 101, 102, 103, *range(200, 209), 226, *range(300, 306), 307, 308,
                               *range(400, 419), *range(421, 427), 428, 429, 431, 451, *range(500, 509), 510, 511])
_GO_ATOI = re.compile(r"^[-+]?[0-9]+\Z")


def retry_condition_problem(condition: str) -> Optional[str]:
    """Why one comma-separated part of retryOn is not a retry condition Istio takes, or None."""
    if condition in RETRY_ON:
        return None
    if _GO_ATOI.match(condition):
        return None if int(condition) in HTTP_STATUS_CODES else f"{show(condition)} is not an HTTP status code"
    return f"{show(condition)} is neither one of them nor an HTTP status code such as 503"


def host_problem(host: Any) -> Optional[str]:
    """Why a host of the Gateway and the VirtualService would be refused, or None: Istio's rules for both
    (agent.ValidateWildcardDomain, and for a Gateway validateSidecarOrGatewayHostnamePart), a little stricter."""
    if not isinstance(host, str):
        return "it is not text"
    if host == "*":
        return None
    if not host:
        return "it is empty"  # CheckDNS1123Preconditions: "empty domain name not allowed"
    if len(host) > MAX_HOST_LENGTH:
        return f"it is {len(host)} characters long, and a DNS name is at most {MAX_HOST_LENGTH}"
    if "*" in host[1:] or (host.startswith("*") and not host.startswith("*.")):
        # ValidatePartialWildCard: "partial wildcard not allowed"; IsWildcardDNS1123Label: only the first label
        return "a wildcard may only be the whole first label ('*.example.com') or the whole host ('*')"
    if host.endswith("."):
        return "it ends with '.', and a request's Host header never does, so no request would match it"
    if host != host.lower():
        return "it has uppercase letters; write it in lowercase, as requests are matched"
    if "." not in host:
        # validateSidecarOrGatewayHostnamePart: "short names (non FQDN) are not allowed" in a Gateway
        return "it is a short name (no dot), which an Istio Gateway refuses; write the full name, e.g. myapp.example.com"
    name = host[2:] if host.startswith("*.") else host
    if "%" in host:
        return "it has '%', an IPv6 zone, which names a network interface of one machine and no request's host"
    if host == name and _is_ip_address(host):
        # Istio takes an IP address (netip.ParseAddr) in both objects; in a Gateway, one with a dot (IPv4, or
        # IPv6 with IPv4 in it such as ::ffff:1.2.3.4), since a host without a dot is a short name there
        return None
    labels = name.split(".")
    for label in labels:
        if not label:
            return "it has an empty label (two dots in a row, or a dot at the start)"
        if len(label) > MAX_HOST_LABEL:
            return f"its label {show(label)} is {len(label)} characters long, over the {MAX_HOST_LABEL} a DNS label may have"
        if not DNS1123_LABEL.match(label):
            return (f"its label {show(label)} is not a DNS label (letters a-z, digits and '-', not starting or ending "
                    f"with '-')")
    if labels[-1].isdigit():  # ValidateDNS1123Labels: "top level domain cannot be all-numeric"
        return f"its top-level domain {show(labels[-1])} is all digits, which Istio refuses unless the host is an IP address"
    return None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def hosts_overlap(first: str, second: str) -> bool:
    """Whether two hosts take some request in common: Istio's host.Name.Matches (pkg/config/host/name.go)."""
    if first.startswith("*") and second.startswith("*"):
        shorter, longer = sorted((first, second), key=len)
        return longer[1:].endswith(shorter[1:])
    if first.startswith("*"):
        return second.endswith(first[1:])
    if second.startswith("*"):
        return first.endswith(second[1:])
    return first == second


def covers(pattern: str, host: str) -> bool:
    """Whether an Istio host pattern ('*', '*.example.com' or a name) takes requests for `host` (host.Name.SubsetOf)."""
    return pattern in ("*", host) or (pattern.startswith("*.") and host.endswith(pattern[1:]))


def duration_ms(text: str) -> Optional[Decimal]:
    """The milliseconds a Go duration (500ms, .5s, 1000us, 1m30s, -1s) stands for, or None when Istio cannot read it."""
    if not _DURATION.match(text):
        return None
    total = sum((Decimal(number if number[0] != "." else "0" + number).normalize() * _DURATION_MS[unit]
                 for number, unit in _DURATION_PART.findall(text)), Decimal(0))
    if total > MAX_GO_DURATION_MS:
        return None
    return -total if text.startswith("-") else total


def parse_quantity(text: str) -> Optional[Decimal]:
    """The amount a Kubernetes quantity stands for (cores, bytes), or None when it is not one."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    if match["exponent"]:
        return Decimal(match[1]).scaleb(int(match["exponent"][1:]))
    return Decimal(match[1]) * _QUANTITY_SCALE[match["binary"] or match["decimal"] or ""]


def parse_image(image: str) -> Optional[re.Match]:
    """The parts of an image reference (domain, path, tag, digest), or None when it is not one."""
    return _IMAGE.match(image) if len(image) <= MAX_IMAGE_LENGTH else None


def default_release(image: re.Match) -> str:
    """The release an image stands for: its tag, else (no tag, or `latest`) the first 12 hex digits of its digest."""
    if image["digest"] and image["tag"] in (None, "latest"):
        return image["digest"].split(":", 1)[1][:12]
    return image["tag"] or "latest"  # a reference without tag or digest means :latest to the runtime


def is_mutable_image(image: re.Match) -> bool:
    """True when the reference names no fixed content: no digest, and tag `latest` or none."""
    return not image["digest"] and image["tag"] in (None, "latest")


def digest_problem(digest: str) -> Optional[str]:
    """Why a digest names no content, or None: a registered algorithm and its exact length of lowercase hex."""
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in DIGEST_HEX_LENGTHS:
        return (f"its digest algorithm {show(algorithm)} is not one that registries and container runtimes accept "
                f"({', '.join(DIGEST_HEX_LENGTHS)})")
    length = DIGEST_HEX_LENGTHS[algorithm]
    if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
        return (f"a {algorithm} digest is exactly {length} lowercase hex digits, and this one has {len(encoded)}"
                + ("" if encoded == encoded.lower() else ", some uppercase"))
    return None


def is_label_value(text: str) -> bool:
    return bool(LABEL_VALUE.match(text)) and len(text) <= MAX_LABEL_LENGTH


def parse_cookie(text: str, fail: Optional[Callable[[str], SettingsError]] = None) -> Cookie:
    """`name=value` as a Cookie; a name or value that is not a valid cookie token (RFC 6265) is refused."""

    def refuse(problem: str) -> SettingsError:
        return fail(problem) if fail else SettingsError(f"cookie {show(text)}: {problem}")

    name, sep, value = text.partition("=")
    if not sep:
        raise refuse("it must be name=value")
    if not COOKIE_NAME.match(name):
        raise refuse("the cookie name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)")
    if not COOKIE_VALUE.match(value):
        raise refuse("the cookie value must be non-empty, without spaces, quotes, commas, semicolons or "
                     "backslashes")
    return Cookie(name, value)
