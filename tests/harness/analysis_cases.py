"""The analysis tests' tables: bad bluegreen:analysis values with the key path and fix each message must name,
PromQL the sanity check passes or refuses (with the problem it names), and the strategies of the fuzzed config."""

from __future__ import annotations

from hypothesis import strategies as st

HOSTILE = [
    # (config, the key path named, a piece of the fix)
    ([], "analysis", "pulumi config rm analysis -s routing"),
    ("not json", "analysis", "pulumi config rm analysis"),
    ({"intervall": "30s"}, "analysis.intervall", "did you mean interval?"),
    ({"prometheusUrl": "prometheus:9090"}, "analysis.prometheusUrl", "http://"),
    ({"prometheusUrl": "http://prom:9090/api/v1/query"}, "analysis.prometheusUrl", "base URL only"),
    ({"prometheusUrl": "http://prom:99999"}, "analysis.prometheusUrl", "not a URL"),
    ({"prometheusUrl": "http://prom:9090/?x=1"}, "analysis.prometheusUrl", "query string"),
    ({"prometheusUrl": "http://prom\n:9090"}, "analysis.prometheusUrl", "control characters"),
    ({"prometheusUrl": 9090}, "analysis.prometheusUrl", "it must be text"),
    ({"interval": "30"}, "analysis.interval", "--path 'analysis.interval' 30s -s routing"),
    ({"interval": "500ms"}, "analysis.interval", "from 1s"),
    ({"interval": "2h"}, "analysis.interval", "to 3600s"),
    ({"interval": "1.0005s"}, "analysis.interval", "whole milliseconds"),
    ({"interval": 30}, "analysis.interval", "30s"),
    ({"count": 0}, "analysis.count", "whole number from 1 to 100"),
    ({"count": "2.5"}, "analysis.count", "whole number"),
    ({"count": True}, "analysis.count", "whole number"),
    ({"count": "1e309"}, "analysis.count", "whole number"),
    ({"count": 100, "interval": "1h"}, "analysis.count", "24h"),
    ({"failureLimit": 0}, "analysis.failureLimit", "from 1"),
    ({"failureLimit": 6}, "analysis.failureLimit", "more than count (5)"),
    ({"minRequests": -1}, "analysis.minRequests", "whole number"),
    ({"noData": "skip"}, "analysis.noData", "only inconclusive measurements fails at the end"),
    ({"successRate": 0}, "analysis.successRate", "above 0"),
    ({"successRate": "101"}, "analysis.successRate", "at most 100"),
    ({"successRate": "NaN"}, "analysis.successRate", "a number"),
    ({"successRate": "Infinity"}, "analysis.successRate", "a number"),
    ({"latencyP99": "500"}, "analysis.latencyP99", "500ms"),
    ({"latencyP99": "0ms"}, "analysis.latencyP99", "500ms"),
    ({"baseline": {}}, "analysis.baseline", "maxSuccessRateDrop"),
    ({"baseline": "yes"}, "analysis.baseline", "must be an object"),
    ({"baseline": {"maxSuccesRateDrop": 1}}, "analysis.baseline.maxSuccesRateDrop", "did you mean maxSuccessRateDrop"),
    ({"baseline": {"maxLatencyIncrease": -5}}, "analysis.baseline.maxLatencyIncrease", "at least 0"),
    ({"dryRun": "yes"}, "analysis.dryRun", "true or false"),
    ({"queries": {"name": "a"}}, "analysis.queries", "analysis.queries[0].query"),
    ({"queries": [{"name": "a", "query": "up", "max": 1}] * 21}, "analysis.queries", "queries[20]"),
    ({"queries": ["up"]}, "analysis.queries[0]", "must be an object"),
    ({"queries": [{"name": "A b", "query": "up", "max": 1}]}, "analysis.queries[0].name", "DNS label"),
    ({"queries": [{"name": "success-rate", "query": "up", "max": 1}]}, "analysis.queries[0].name", "my-success-rate"),
    ({"queries": [{"name": "a", "query": "up", "max": 1}, {"name": "a", "query": "up", "min": 0}]},
     "analysis.queries[1].name", "same name"),
    ({"queries": [{"name": "a", "query": "up"}]}, "analysis.queries[0]", "analysis.queries[0].max"),
    ({"queries": [{"name": "a", "query": "up", "min": 2, "max": 1}]}, "analysis.queries[0].max",
     "below min (2)"),
    ({"queries": [{"name": "a", "query": "up", "max": "lots"}]}, "analysis.queries[0].max", "a number"),
    ({"queries": [{"name": "a", "query": "up", "max": 1, "thershold": 2}]}, "analysis.queries[0].thershold",
     "pulumi config rm --path 'analysis.queries[0].thershold'"),
    ({"queries": [{"name": "a", "query": "sum(rate(x[{{ window }}]))", "max": 1}]}, "analysis.queries[0].query",
     "{{ window }} is not a placeholder"),
    ({"queries": [{"name": "a", "query": 'sum(rate(x{a="b}[1m]))', "max": 1}]}, "analysis.queries[0].query",
     "never closed"),
    ({"queries": [{"name": "a", "query": "", "max": 1}]}, "analysis.queries[0].query", "it is empty"),
    ({"queries": [{"name": "a", "query": 7, "max": 1}]}, "analysis.queries[0].query", "must be text"),
]


PROMQL = [
    ('sum(rate(istio_requests_total{destination_workload="{{ app }}-{{ color }}"}[{{ interval }}]))', None),
    ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))  # p99\n", None),
    ('sum(rate(x{a=~"5..|[0-9]{3}", b=\'{{ release }}\'}[1m]))', None),  # brackets inside strings do not count
    ("sum(x{a=`raw \\ {{ namespace }}`})", None),
    ('sum(x{a="esc \\" quote"})', None),
    ("sum(rate(x[5m])", "'(' at character 4 is never closed"),
    ("sum(rate(x[5m)))", "')' at character 14 does not close the '[' at character 11"),
    ("sum(x{a=\"b\n\"})", "runs past the end of its line"),
    ("sum(rate(x[]))", "the range [] at character 11 is empty"),
    ("x{a='b}", "never closed"),
    ("sum(x) }", "'}' at character 8 has no '{' before it"),
    ("{{ app", "'{{' or '}}' that is not part of a placeholder"),
    ("sum(x{a=\"{{ Namespace }}\"})", "{{ Namespace }} is not a placeholder (did you mean {{ namespace }}?)"),
    ("sum(x{a=\"{{ args.service }}\"})", "not a placeholder"),
    ("sum(x{a={{ app }}})", "outside quotes"),
    ("", "it is empty"),
    ("sum(x)\x00", "control character"),
    ("x" * 8001, "over 8000"),
]


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                       | st.text(max_size=12),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                       max_leaves=8)
FIELD_VALUES = {
    "prometheusUrl": st.sampled_from(["", "http://p:9090", "https://u:p@h", "ftp://x", "http://", "http://p/?q"]),
    "interval": st.sampled_from(["30s", "1s", "999ms", "1h", "1h1ms", "1m30s", "30", "-1s", "1.5s", "µs", "3600s"]),
    "count": st.integers(-2, 120) | st.sampled_from(["5", "5.0", "x", "1e3", True]),
    "failureLimit": st.integers(-1, 8) | st.sampled_from(["1", None]),
    "minRequests": st.integers(-1, 10**10) | st.sampled_from(["10", "ten"]),
    "noData": st.sampled_from(["fail", "wait", "Fail", "", None, 1]),
    "successRate": st.floats(-1, 101) | st.sampled_from(["99%", "NaN", "inf", "0", "100", True]),
    "latencyP99": st.sampled_from(["500ms", "0s", "10m", "10m1ms", "1", None, 500]),
    "baseline": st.sampled_from([{}, {"maxSuccessRateDrop": 1}, {"maxLatencyIncrease": "20%"}, {"x": 1}, [], "a"]),
    "dryRun": st.sampled_from([True, False, "true", "False", "yes", 1]),
    "queries": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "Bad", "success-rate", ""]),
                                               "query": st.sampled_from(["up", "sum(x[{{ interval }}])", "sum(",
                                                                         "{{ app }}", "", "x{a=\"{{ color }}\"}"]),
                                               "max": st.sampled_from([1, None, "2", "x", float("inf")])}),
                        max_size=3) | JSONISH,
}
CONFIG = st.fixed_dictionaries({}, optional={**FIELD_VALUES, "bogus": JSONISH})
