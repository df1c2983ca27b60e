"""Route computation and Istio's match semantics, without the engine."""

import pytest

from components.routes import (
    COLOR_HEADER, UnsupportedMatch, color_for, cookie_of_regex, cookie_regex, describe_match, http_routes,
    request_for, select_route,
)
from components.domain import Cookie
from components.settings import parse_settings
from harness.stacks import DEFAULTS

TUTORIAL_REGEX = "^(.*?;)?(test=true)(;.*)?$"

# Cookie headers as clients send them: those that carry the cookie test=true...
CARRIES_TEST_COOKIE = [
    "test=true",
    "a=b; test=true",  # what browsers send: '; ' between cookies
    "a=b;test=true",
    "test=true; a=b",
    "a=b; test=true; c=d",
    "session=xyz;  test=true",
    "a=b;\ttest=true",
    "test=true;",
    "test=false; test=true",
]
# ...and those that do not.
LACKS_TEST_COOKIE = [
    "",
    "test=false",
    "xtest=true",
    "test=true2",
    "test=truex; a=b",
    "a=test=true",  # the cookie a, whose value is test=true
    "mytest=true; test=false",
    "test=TRUE",
    "Test=true",
    "test =true",
    "a=b; test=true2; c=d",
]


def routing(**config):
    return parse_settings({"active": "blue", **config}, "routing", defaults=DEFAULTS)


def test_routes_come_in_istio_order_test_route_first():
    http = http_routes(routing(test="green"))
    assert [r["name"] for r in http] == ["myapp-test", "myapp-default"]
    assert [r["route"][0]["destination"] for r in http] == [
        {"host": "myapp", "subset": "green"}, {"host": "myapp", "subset": "blue"}]
    assert "match" not in http[1]  # the default route is the catch-all


def test_without_test_there_is_only_the_default_route():
    http = http_routes(routing())
    assert [r["name"] for r in http] == ["myapp-default"]
    assert color_for(http, {"cookie": "test=true"}) == "blue"


def test_every_route_tells_the_client_which_color_answered():
    for route in http_routes(routing(active="green", test="blue")):
        assert route["headers"] == {"response": {"set": {COLOR_HEADER: route["route"][0]["destination"]["subset"]}}}


@pytest.mark.parametrize("header", CARRIES_TEST_COOKIE)
def test_a_request_carrying_the_test_cookie_reaches_the_test_color(header):
    assert color_for(http_routes(routing(test="green")), {"Cookie": header}) == "green"


@pytest.mark.parametrize("header", LACKS_TEST_COOKIE)
def test_a_request_without_the_test_cookie_reaches_the_active_color(header):
    assert color_for(http_routes(routing(test="green")), {"Cookie": header}) == "blue"


def test_a_request_with_no_cookie_header_reaches_the_active_color():
    assert color_for(http_routes(routing(test="green")), {"user-agent": "curl"}) == "blue"


def test_the_tutorial_regex_misses_what_browsers_send_and_ours_does_not():
    tutorial = [{"match": [{"headers": {"cookie": {"regex": TUTORIAL_REGEX}}}],
                 "route": [{"destination": {"subset": "green"}}]},
                {"route": [{"destination": {"subset": "blue"}}]}]
    assert color_for(tutorial, {"cookie": "a=b;test=true"}) == "green"
    assert color_for(tutorial, {"cookie": "a=b; test=true"}) == "blue"  # the bug this project fixes
    assert color_for(http_routes(routing(test="green")), {"cookie": "a=b; test=true"}) == "green"


def test_cookie_names_and_values_are_escaped_not_pasted_into_the_regex():
    http = http_routes(routing(test="green", testCookie="canary.v2=yes+1|*"))
    assert color_for(http, {"cookie": "a=1; canary.v2=yes+1|*"}) == "green"
    for near_miss in ["canaryXv2=yes+1|*", "canary.v2=yess1|*", "canary.v2=yes+1", "canary.v2=yes+1|**"]:
        assert color_for(http, {"cookie": near_miss}) == "blue", near_miss


def test_our_cookie_regex_is_read_back_and_others_are_not():
    cookie = Cookie("canary.v2", "yes+1")
    assert cookie_of_regex(cookie_regex(cookie)) == cookie
    assert cookie_of_regex(TUTORIAL_REGEX) is None


def test_matches_are_described_in_plain_words():
    test_route, default_route = http_routes(routing(test="green"))
    assert describe_match(test_route) == "requests with cookie test=true"
    assert describe_match(default_route) is None
    other = {"match": [{"headers": {"x-canary": {"exact": "1"}}, "uri": {"prefix": "/api"}}]}
    assert describe_match(other) == "requests with header x-canary exact '1' and path prefix '/api'"


def test_first_matching_route_wins_and_unmatched_requests_find_no_route():
    http = [{"name": "a", "match": [{"uri": {"prefix": "/a"}}], "route": [{"destination": {"subset": "green"}}]},
            {"name": "b", "match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"subset": "blue"}}]}]
    assert select_route(http, {}, "/a/x")["name"] == "a"
    assert select_route(http, {}, "/b")["name"] == "b"
    assert select_route(http[:1], {}, "/b") is None


def test_header_regex_must_match_the_whole_value():
    http = [{"match": [{"headers": {"x": {"regex": "abc"}}}], "route": [{"destination": {"subset": "green"}}]}]
    assert color_for(http, {"x": "abc"}) == "green"
    assert color_for(http, {"x": "xabcx"}) is None


def test_what_the_evaluator_cannot_judge_is_refused_not_guessed():
    with pytest.raises(UnsupportedMatch):
        select_route([{"match": [{"queryParams": {"a": {"exact": "1"}}}]}], {})
    with pytest.raises(UnsupportedMatch, match="not valid RE2"):
        select_route([{"match": [{"headers": {"x": {"regex": "(?=a)"}}}]}], {"x": "a"})


def test_a_request_built_from_a_match_takes_that_route():
    test_route, default_route = http_routes(routing(test="green", testCookie="canary=yes"))
    headers, path = request_for(test_route["match"][0])
    assert headers == {"cookie": "canary=yes"} and path == "/"
    assert select_route([test_route, default_route], headers, path) is test_route
    assert request_for({"queryParams": {"a": {"exact": "1"}}}) is None
