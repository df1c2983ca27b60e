"""The bluegreen guardrails policy pack; the checks themselves are plain functions in guardrails.py."""

from pulumi_policy import EnforcementLevel, PolicyPack

from guardrails import POLICIES

PolicyPack(
    name="bluegreen-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,  # each violation blocks the preview or update
    policies=POLICIES,
)
