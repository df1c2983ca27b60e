"""Route computation and match evaluation for the VirtualService.

Pure logic: `http_routes` builds the VirtualService's `spec.http` from the routing settings,
and `select_route` / `describe_match` read such a spec back the way Istio applies it (first
matching route wins; a header regex must match the whole value, in RE2 syntax). The program declares what
`http_routes` returns, and the offline plan and the tests read it with `select_route`, so the
route table a reviewer sees can never disagree with what the VirtualService says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import re2  # Envoy matches header regexes with RE2; so does this evaluator

from .contract import service_name
from .domain import Cookie, RoutingSettings

COLOR_HEADER = "x-bluegreen-color"  # set on every response, so a client can prove which color answered

# Header whitespace (OWS) is space or tab; a cookie ends at ';' or at the end of the header.
_COOKIE_BEFORE = r"^(.*;[ \t]*)?"
_COOKIE_AFTER = r"([ \t]*;.*)?$"


class UnsupportedMatch(ValueError):
    """A match condition this evaluator does not implement; refused rather than guessed."""


@dataclass(frozen=True)
class Route:
    """One HTTP route: requests carrying `cookie` (every request when None) go to `color`."""

    name: str
    color: str
    cookie: Optional[Cookie] = None


def regex_escape(text: str) -> str:
    """Escape for RE2 (Istio) and Python alike: every ASCII punctuation character gets a backslash."""
    return "".join("\\" + c if c.isascii() and not c.isalnum() else c for c in text)


def cookie_regex(cookie: Cookie) -> str:
    """A regex for the whole Cookie header that holds when `cookie` is one of its cookies.

    Matches `a=b; test=true`, `test=true;a=b` and `test=true` alone; not `xtest=true`,
    `test=true2`, `test=false` or `a=test=true` (a cookie named a whose value is test=true).
    """
    return f"{_COOKIE_BEFORE}{regex_escape(cookie.name)}={regex_escape(cookie.value)}{_COOKIE_AFTER}"


def cookie_of_regex(regex: str) -> Optional[Cookie]:
    """The cookie that `cookie_regex` built this regex for, or None when it is some other regex."""
    if not (regex.startswith(_COOKIE_BEFORE) and regex.endswith(_COOKIE_AFTER)):
        return None
    pair = re.sub(r"\\(.)", r"\1", regex[len(_COOKIE_BEFORE):-len(_COOKIE_AFTER)])
    name, _, value = pair.partition("=")  # a cookie name never holds '='
    cookie = Cookie(name, value)
    return cookie if cookie_regex(cookie) == regex else None


def compute_routes(settings: RoutingSettings, test_token: Optional[str] = None) -> list[Route]:
    """The routes in the order Istio applies them: the test route first (when set), then the default.

    With a test token, the test cookie is `<testCookie name>=<token>`: the tutorial's `test=true`
    then reaches the active color like any other request.
    """
    routes = []
    if settings.test:
        cookie = Cookie(settings.test_cookie.name, test_token) if test_token else settings.test_cookie
        routes.append(Route(f"{settings.app}-test", settings.test, cookie))
    routes.append(Route(f"{settings.app}-default", settings.active))
    return routes


def http_routes(settings: RoutingSettings, test_token: Optional[str] = None) -> list[dict[str, Any]]:
    """The VirtualService's `spec.http`. With a test token the result holds it: keep it a Pulumi secret.

    Both routes get the same timeout and retries, so the test color is tested under the production policy.
    """
    spec = []
    for route in compute_routes(settings, test_token):
        entry: dict[str, Any] = {"name": route.name}
        if route.cookie is not None:
            entry["match"] = [{"headers": {"cookie": {"regex": cookie_regex(route.cookie)}}}]
        entry["route"] = [{"destination": {"host": service_name(settings.app), "subset": route.color}}]
        if settings.timeout:
            entry["timeout"] = settings.timeout
        if settings.retries:
            entry["retries"] = dict(settings.retries)
        entry["headers"] = {"response": {"set": {COLOR_HEADER: route.color}}}
        spec.append(entry)
    return spec


def _string_match(condition: Mapping[str, Any], value: Optional[str]) -> bool:
    unknown = set(condition) - {"exact", "prefix", "regex"}
    if unknown or len(condition) != 1:
        raise UnsupportedMatch(f"string match {dict(condition)!r}: only one of exact, prefix, regex is evaluated")
    if value is None:
        return False  # Istio: a condition on an absent header does not match
    if "exact" in condition:
        return value == condition["exact"]
    if "prefix" in condition:
        return value.startswith(condition["prefix"])
    try:
        return re2.fullmatch(condition["regex"], value) is not None
    except re2.error as error:
        raise UnsupportedMatch(f"regex {condition['regex']!r} is not valid RE2, so Istio would refuse it: {error}") from None


def _request_matches(match: Mapping[str, Any], headers: Mapping[str, str], uri: str) -> bool:
    unknown = set(match) - {"name", "headers", "uri"}
    if unknown:
        raise UnsupportedMatch(f"match on {', '.join(sorted(unknown))} is not evaluated")
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, condition in (match.get("headers") or {}).items():
        if not _string_match(condition, lowered.get(name.lower())):
            return False
    return "uri" not in match or _string_match(match["uri"], uri)


def select_route(http: Sequence[Mapping[str, Any]], headers: Mapping[str, str],
                 uri: str = "/") -> Optional[Mapping[str, Any]]:
    """The route Istio applies to a request: the first whose match list is empty or has a match."""
    for route in http:
        matches = route.get("match") or []
        if not matches or any(_request_matches(m, headers, uri) for m in matches):
            return route
    return None


def route_color(route: Mapping[str, Any]) -> str:
    """The subset (color) a route sends all of its requests to."""
    destinations = route.get("route") or []
    if len(destinations) != 1:
        raise UnsupportedMatch(f"route {route.get('name')!r} splits traffic over {len(destinations)} destinations")
    return destinations[0]["destination"]["subset"]


def color_for(http: Sequence[Mapping[str, Any]], headers: Mapping[str, str], uri: str = "/") -> Optional[str]:
    """Which color answers a request with these headers; None when no route takes it."""
    route = select_route(http, headers, uri)
    return None if route is None else route_color(route)


def describe_match(route: Mapping[str, Any]) -> Optional[str]:
    """A route's match in plain words; None for the catch-all ("everyone else")."""
    matches = route.get("match") or []
    if not matches:
        return None
    words = []
    for match in matches:
        parts = []
        for name, condition in (match.get("headers") or {}).items():
            cookie = cookie_of_regex(condition.get("regex", "")) if name.lower() == "cookie" else None
            if cookie is not None:
                parts.append(f"cookie {cookie}")
            else:
                kind, value = next(iter(condition.items()))
                parts.append(f"header {name} {kind} {value!r}")
        if "uri" in match:
            kind, value = next(iter(match["uri"].items()))
            parts.append(f"path {kind} {value!r}")
        words.append(" and ".join(parts))
    return "requests with " + " or ".join(words)


def request_for(match: Mapping[str, Any]) -> Optional[tuple[dict[str, str], str]]:
    """Headers and path of a request that this match takes (the reverse of describe_match), or None when
    it cannot be built from the match alone."""
    if set(match) - {"name", "headers", "uri"}:
        return None
    headers = {}
    for name, condition in (match.get("headers") or {}).items():
        cookie = cookie_of_regex(condition.get("regex", "")) if name.lower() == "cookie" else None
        value = str(cookie) if cookie else condition.get("exact", condition.get("prefix"))
        if value is None:
            return None
        headers[name] = value
    uri = match.get("uri", {"prefix": "/"})
    path = uri.get("exact", uri.get("prefix"))
    return (headers, path) if path is not None else None
