"""The strict schema check itself: it must catch what the published models silently drop."""

from harness.schemas import schema_problems

GATEWAY = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "g"},
           "spec": {"selector": {"istio": "ingressgateway"},
                    "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}


def test_a_valid_object_has_no_problems():
    assert schema_problems(GATEWAY) == []


def test_a_field_the_schema_does_not_know_is_a_problem():
    gateway = {**GATEWAY, "spec": {**GATEWAY["spec"], "selectors": {"istio": "ingressgateway"}}}
    assert schema_problems(gateway) == ["spec.selectors: not a field of the schema"]


def test_a_value_of_the_wrong_type_is_a_problem():
    gateway = {**GATEWAY, "spec": {**GATEWAY["spec"], "servers": [{"port": {"number": "eighty"}, "hosts": ["*"]}]}}
    assert any("spec.servers.0.port.number" in p for p in schema_problems(gateway))
