"""The routing stack's settings: which colors the routes reach, the test cookie and token, hosts, TLS, timeouts,
retries and the metric analysis of a release (analysis.py). Read through settings.Reader, refused by Istio's rules
(rules.py) before anything is declared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from . import rules
from .domain import COLORS, PROJECT, Cookie, RoutingSettings, SettingsError, Tls, other_color, show
from .routes import cookie_regex

if TYPE_CHECKING:  # settings.py imports this module to read the routing stack's keys
    from .settings import Reader

MIN_TOKEN_LENGTH = 16  # 16 random characters are out of reach of guessing through the gateway
MAX_TOKEN_LENGTH = 256  # a cookie header stays far below the gateway's header size limit


def routing_settings(reader: Reader, app: str, namespace: str) -> RoutingSettings:
    active = reader.color("active")
    test = reader.string("test") or None
    if test is not None:
        test = reader.color("test", other_color(active))
        if test == active:
            other = other_color(active)
            raise reader.fail("test", test, f"it is also the active color ({PROJECT}:active), and users are on "
                              f"{active}: a release is never tested in the live color",
                              f"pulumi config set test {other} -s {reader.stack} (deploy the release there first), "
                              f"or pulumi config rm test -s {reader.stack}")
    test_cookie = rules.parse_cookie(reader.string("testCookie"),
                               lambda problem: reader.fail("testCookie", reader.string("testCookie"), problem))
    test_token_set = _test_token_set(reader)
    _check_cookie_regex(reader, test_cookie)
    hosts = _hosts(reader, "hosts", reader.structured("hosts", list))
    color_stacks = {}
    for color in COLORS:
        key = f"{color}Stack"
        name = reader.string(key)
        if not rules.STACK_NAME.match(name):
            raise reader.fail(key, name, "it must be a stack name like organization/bluegreen/" + color)
        color_stacks[color] = name
    if color_stacks["blue"] == color_stacks["green"]:
        raise reader.fail("greenStack", color_stacks["green"], f"it is also {PROJECT}:blueStack, and blue and green "
                          f"must be different stacks")
    timeout = _duration(reader, "timeout")
    from .analysis import parse_analysis  # here: analysis.py imports settings.py, which imports this module
    analysis = parse_analysis(reader.raw.get("analysis"), reader.stack)
    return RoutingSettings(
        stack=reader.stack, app=app, namespace=namespace, active=active, test=test, test_cookie=test_cookie,
        hosts=hosts, color_stacks=color_stacks, test_token_set=test_token_set, tls=_tls(reader, hosts),
        timeout=timeout, retries=_retries(reader, timeout), analysis=analysis,
    )


def _hosts(reader: Reader, key: str, hosts: Any) -> tuple[str, ...]:
    fix = f"pulumi config set --path '{key}[0]' example.com -s {reader.stack}"
    if not isinstance(hosts, list) or not hosts:
        raise reader.fail(key, hosts, "it must be a list of at least one host", fix)
    for host in hosts:
        problem = rules.host_problem(host)
        if problem:
            raise reader.fail(key, host, f"each host must be '*', a DNS name or '*.' and a DNS name, in lowercase; "
                              f"{problem}", fix)
    for index, host in enumerate(hosts):
        other = next((o for o in hosts[index + 1:] if rules.hosts_overlap(host, o)), None)
        if other is not None:
            # ValidateVirtualService: "duplicate hosts in virtual service" (a wildcard and a name it covers count)
            wider = max(host, other, key=lambda h: (h.startswith("*"), -len(h)))
            raise reader.fail(key, hosts, f"{show(host)} and {show(other)} overlap, and Istio refuses a VirtualService "
                              f"whose hosts do", f"list each host once and drop the hosts {show(wider)} already "
                              f"covers: pulumi config set --path '{key}[0]' {wider} -s {reader.stack}, then "
                              f"pulumi config rm --path '{key}[1]' -s {reader.stack}")
    return tuple(hosts)


def _check_cookie_regex(reader: Reader, cookie: Cookie) -> None:
    """The test route matches the cookie with a header regex, which Istio refuses over rules.MAX_ISTIO_REGEX characters
    (validateStringRegexp): checked for the cookie as configured and, with a test token, for the token's cookie."""
    length = len(cookie_regex(cookie))
    if length > rules.MAX_ISTIO_REGEX:
        raise reader.fail("testCookie", str(cookie), f"the header regex that matches it would be {length} characters, "
                          f"and Istio refuses a regex longer than {rules.MAX_ISTIO_REGEX}",
                          )
    token = reader.string("testToken")
    if token and len(cookie_regex(Cookie(cookie.name, token))) > rules.MAX_ISTIO_REGEX:
        raise reader.fail("testToken", token, f"with the cookie name {show(cookie.name)} ({PROJECT}:testCookie), the "
                          f"header regex that matches the test cookie would be longer than the {rules.MAX_ISTIO_REGEX} "
                          f"characters Istio accepts", f"a shorter cookie name: {reader.fix('testCookie')}"
                          f", or a shorter token: {reader.fix('testToken')}")


def _test_token_set(reader: Reader) -> bool:
    """Validate testToken without keeping it: the program reads it again as a Pulumi secret."""
    token = reader.string("testToken")
    if not token:
        return False
    fix = reader.fix("testToken")
    if "testToken" not in reader.secret_keys:
        raise SettingsError(f"{PROJECT}:testToken is stored in plain text on stack {reader.stack}: anyone who reads "
                            f"the stack file could reach the release under test. Fix: {fix}")
    if len(token) < MIN_TOKEN_LENGTH:
        raise reader.fail("testToken", token, f"it is shorter than {MIN_TOKEN_LENGTH} characters, so it could be "
                          f"guessed", fix)
    if len(token) > MAX_TOKEN_LENGTH or not rules.COOKIE_VALUE.match(token):
        raise reader.fail("testToken", token, f"it must be a cookie value of at most {MAX_TOKEN_LENGTH} characters "
                          f"(letters, digits and punctuation except quotes, commas, semicolons and backslashes)", fix)
    return True


def _tls(reader: Reader, hosts: tuple[str, ...]) -> Optional[Tls]:
    fix = reader.fix("tls")
    tls = reader.structured("tls", dict)
    if not tls:
        return None
    for key in tls:
        if key not in ("credentialName", "hosts"):
            raise SettingsError(f"{PROJECT}:tls has the field {show(key)}, which is not one of credentialName and "
                                f"hosts. Fix: pulumi config rm --path 'tls.{key}' -s {reader.stack}")
    name = tls.get("credentialName")
    if not isinstance(name, str) or not rules.DNS_SUBDOMAIN.match(name) or len(name) > rules.MAX_SUBDOMAIN_LENGTH:
        raise reader.fail("tls.credentialName", name, "it must name the Kubernetes TLS Secret that holds the "
                          "certificate, in the ingress gateway's namespace (lowercase letters, digits, '-' and '.')",
                          fix)
    tls_hosts = _hosts(reader, "tls.hosts", tls["hosts"]) if "hosts" in tls else hosts
    for host in tls_hosts:
        if not any(rules.covers(pattern, host) for pattern in hosts):
            raise reader.fail("tls.hosts", host, f"the routes answer only for {PROJECT}:hosts {show(list(hosts))}, "
                              f"so HTTPS for this host would reach no route",
                              f"pulumi config rm --path tls.hosts -s {reader.stack} (HTTPS for every host)")
    return Tls(name, tls_hosts)


def _duration(reader: Reader, key: str) -> Optional[str]:
    """An Istio duration, written in whole seconds or milliseconds (e.g. 1m30s as 90s); None when empty."""
    text = reader.string(key)
    if not text:
        return None
    ms = rules.duration_ms(text)
    if ms is None or ms < 1 or ms != ms.to_integral_value():
        # Istio's ValidateDuration: at least 1ms, "only durations to ms precision are supported"
        raise reader.fail(key, text, "it must be a Go duration of at least 1ms in whole milliseconds, like 500ms, "
                          ".5s, 2s, 1m30s or 48h (empty for none)")
    ms = int(ms)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _retries(reader: Reader, timeout: Optional[str]) -> dict[str, Any]:
    """The HTTPRetry both routes share; attempts 0 turns retries off (Istio's own default retries too)."""
    attempts = reader.integer("retryAttempts")
    retry_on = reader.string("retryOn")
    problems = [p for p in map(rules.retry_condition_problem, retry_on.split(",")) if p] if retry_on else []
    if problems or attempts and not retry_on:
        problem = problems[0] if retry_on else "it is empty, but retryAttempts is not 0"
        raise reader.fail("retryOn", retry_on, f"it must list, comma-separated without spaces, Envoy's retry "
                          f"conditions ({', '.join(rules.RETRY_ON)}) or HTTP status codes (e.g. 503); {problem}")
    per_try_timeout = _duration(reader, "retryPerTryTimeout")
    if per_try_timeout and timeout and rules.duration_ms(per_try_timeout) > rules.duration_ms(timeout):
        raise reader.fail("retryPerTryTimeout", reader.string("retryPerTryTimeout"), f"it is longer than "
                          f"{PROJECT}:timeout ({timeout}), which ends the request first, so no retry could run",
                          f"pulumi config rm retryPerTryTimeout -s {reader.stack} (a try may then last the whole "
                          f"timeout), or set it to at most {timeout}")
    if attempts == 0:
        return {"attempts": 0}  # Istio refuses retry conditions or a per-try timeout with no attempts
    retries: dict[str, Any] = {"attempts": attempts, "retryOn": retry_on}
    if per_try_timeout:
        retries["perTryTimeout"] = per_try_timeout
    return retries
