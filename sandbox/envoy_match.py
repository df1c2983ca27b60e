"""Envoy's request matchers, EMULATED for the sandbox's gateway stand-in (no Envoy runs here).

Pure functions over the Envoy API's published Python types (xds-protos): a virtual host's domains
(exact, then `*.suffix` wildcards longest first, then `prefix.*` wildcards longest first, then `*`),
a route's path specifier (prefix, path, safe_regex, path_separated_prefix), header matchers (the
StringMatcher forms, present, range, invert, treat_missing_header_as_empty) and query parameter
matchers. A regex is RE2 and must match the whole value, as in Envoy. sandbox/envoy_routes.py uses them.
What is not evaluated (gRPC, TLS context, dynamic metadata, runtime fractions, the matcher tree)
does not match, so a route that needs it is skipped rather than taken by a guess.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence
from urllib.parse import parse_qsl

import re2

from envoy.config.route.v3 import route_components_pb2 as route_pb
from envoy.type.matcher.v3 import regex_pb2, string_pb2


class UnsupportedConfig(ValueError):
    """Config the emulation cannot honour (an invalid RE2 regex, for one): refused, as Envoy NACKs it."""


def regex_fullmatch(matcher: regex_pb2.RegexMatcher, value: str) -> bool:
    try:
        return re2.fullmatch(matcher.regex, value) is not None
    except re2.error as error:
        raise UnsupportedConfig(f"regex {matcher.regex!r} is not valid RE2: {error}") from None


def string_matches(matcher: string_pb2.StringMatcher, value: str) -> bool:
    """Envoy's StringMatcher: ignore_case applies to exact, prefix, suffix and contains, never to a regex."""
    pattern = matcher.WhichOneof("match_pattern")
    if pattern == "safe_regex":
        return regex_fullmatch(matcher.safe_regex, value)
    if pattern not in ("exact", "prefix", "suffix", "contains"):
        return False  # custom matchers are extensions: not evaluated
    expected = getattr(matcher, pattern)
    if matcher.ignore_case:
        expected, value = expected.lower(), value.lower()
    if pattern == "exact":
        return value == expected
    if pattern == "prefix":
        return value.startswith(expected)
    if pattern == "suffix":
        return value.endswith(expected)
    return expected in value


def header_matches(matcher: route_pb.HeaderMatcher, headers: Mapping[str, str]) -> bool:
    """One HeaderMatcher against the request's headers (lower-case names, repeated values joined by ',')."""
    value = headers.get(matcher.name.lower())
    kind = matcher.WhichOneof("header_match_specifier")
    if value is None and matcher.treat_missing_header_as_empty:
        value = ""
    if value is None:
        # Envoy: an absent header satisfies only a presence test that expects absence (inverted or not).
        if kind != "present_match":
            return False
        return matcher.present_match == matcher.invert_match
    if kind is None or kind == "present_match":
        matched = True if kind is None else matcher.present_match
    elif kind == "string_match":
        matched = string_matches(matcher.string_match, value)
    elif kind == "exact_match":
        matched = value == matcher.exact_match
    elif kind == "safe_regex_match":
        matched = regex_fullmatch(matcher.safe_regex_match, value)
    elif kind == "prefix_match":
        matched = value.startswith(matcher.prefix_match)
    elif kind == "suffix_match":
        matched = value.endswith(matcher.suffix_match)
    elif kind == "contains_match":
        matched = matcher.contains_match in value
    else:  # range_match: an integer in [start, end)
        try:
            matched = matcher.range_match.start <= int(value) < matcher.range_match.end
        except ValueError:
            matched = False
    return matched != matcher.invert_match


def query_matches(matcher: route_pb.QueryParameterMatcher, query: Sequence[tuple[str, str]]) -> bool:
    value = next((v for k, v in query if k == matcher.name), None)
    if value is None:
        return False
    if matcher.WhichOneof("query_parameter_match_specifier") == "string_match":
        return string_matches(matcher.string_match, value)
    return matcher.present_match


def path_matches(match: route_pb.RouteMatch, path: str) -> bool:
    """The path specifier: `prefix` sees the whole :path (query included), the others the path before '?'."""
    bare = path.split("?", 1)[0]
    case_sensitive = not match.HasField("case_sensitive") or match.case_sensitive.value
    kind = match.WhichOneof("path_specifier")
    if kind == "safe_regex":
        return regex_fullmatch(match.safe_regex, bare)
    fold = (lambda text: text) if case_sensitive else str.lower
    if kind == "prefix":
        return fold(path).startswith(fold(match.prefix))
    if kind == "path":
        return fold(bare) == fold(match.path)
    if kind == "path_separated_prefix":
        prefix = fold(match.path_separated_prefix)
        return fold(bare) == prefix or fold(bare).startswith(prefix + "/")
    return False  # connect_matcher, path_match_policy: not evaluated


def route_matches(match: route_pb.RouteMatch, path: str, headers: Mapping[str, str]) -> bool:
    """A route's whole match: path, every header matcher and every query parameter matcher."""
    if match.HasField("grpc") or match.HasField("tls_context") or match.dynamic_metadata \
            or match.HasField("runtime_fraction"):
        return False
    if not path_matches(match, path):
        return False
    if not all(header_matches(h, headers) for h in match.headers):
        return False
    query = parse_qsl(path.split("?", 1)[1], keep_blank_values=True) if "?" in path else []
    return all(query_matches(q, query) for q in match.query_parameters)


def domain_rank(domain: str, host: str) -> Optional[tuple[int, int]]:
    """How well one of a virtual host's domains matches a host, lower is better; None when it does not.

    Envoy's order: exact, then `*.example.com`-style suffixes (longest first), then `example.*`-style
    prefixes (longest first), then `*`. A wildcard stands for at least one character.
    """
    domain = domain.lower()
    if domain == "*":
        return (3, 0)
    if domain == host:
        return (0, 0)
    if domain.startswith("*") and len(host) > len(domain) - 1 and host.endswith(domain[1:]):
        return (1, -len(domain))
    if domain.endswith("*") and len(host) > len(domain) - 1 and host.startswith(domain[:-1]):
        return (2, -len(domain))
    return None


def select_virtual_host(virtual_hosts: Sequence[route_pb.VirtualHost], host: str) -> Optional[route_pb.VirtualHost]:
    """The virtual host Envoy picks for a host (lower-cased, its port already stripped when configured)."""
    best, best_rank = None, None
    for virtual_host in virtual_hosts:
        for domain in virtual_host.domains:
            rank = domain_rank(domain, host)
            if rank is not None and (best_rank is None or rank < best_rank):
                best, best_rank = virtual_host, rank
    return best
