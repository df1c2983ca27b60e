"""The program's refusal reaches the last line: error diagnostics extracted from the real CLI's outputs
(tests/harness/engine_outputs: recorded from pulumi v3.260.0, or by hand in its format where marked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen_tools.engine_errors import diagnostics, program_error

OUTPUTS = Path(__file__).parent / "harness" / "engine_outputs"
REFUSAL = ("green (release v1.1.0) has no ready pod in the cluster now (Deployment myapp-green in namespace "
           "default; its stack recorded 1 at its last update), so users would get errors. Fix: kubectl rollout "
           "status deployment/myapp-green -n default, or keep bluegreen:active on blue")
STACK = "pulumi:pulumi:Stack (bluegreen-routing)"


def output(name: str) -> str:
    return (OUTPUTS / f"{name}.txt").read_text()


@pytest.mark.parametrize("name", ["up_runerror", "preview_runerror"])
def test_the_programs_refusal_from_the_text_display_names_its_resource(name):
    assert program_error(output(name)) == f"{STACK}: error: {REFUSAL}"


@pytest.mark.parametrize("name", ["up_runerror_json", "preview_runerror_json"])
def test_the_programs_refusal_from_the_json_events_and_the_preview_digest(name):
    assert program_error(output(name)) == f"error: {REFUSAL}"  # the Stack's diagnostics carry no URN


def test_the_engines_closing_line_is_dropped_when_the_program_said_why():
    found = [d.message for d in diagnostics(output("up_runerror"))]
    assert found == [REFUSAL, "an unhandled error occurred: program exited with non-zero exit code: 1"]
    assert "non-zero exit code" not in program_error(output("up_runerror"))


@pytest.mark.parametrize("name", ["up_bug", "up_bug_json"])
def test_a_programs_bug_is_its_exception_in_one_line_not_its_traceback(name):
    line = program_error(output(name))
    assert line.endswith("error: Program failed with an unhandled exception: KeyError: 'missing'")
    assert "Traceback" not in line and "\n" not in line


def test_a_providers_error_names_its_resource_and_drops_the_stacks_update_failed():
    assert program_error(output("hand_provider_error")) == (
        'kubernetes:networking.istio.io/v1:VirtualService (myapp-blue-green): error: update of resource '
        '"urn:pulumi:routing::bluegreen::kubernetes:networking.istio.io/v1:VirtualService::myapp-blue-green" '
        'failed: admission webhook "validation.istio.io" denied the request: configuration is invalid: route must '
        'have at least one destination')


def test_secrets_are_masked_before_the_line_is_cut():
    secret = "tok-9f8e7d6c5b4a"
    line = program_error(output("hand_plain_secret"), secrets=[secret, ""])
    assert secret not in line and "cookie test=[secret] to blue" in line
    cut = program_error(output("hand_plain_secret"), secrets=[secret], limit=90)
    assert len(cut) <= 93 and "tok-9f8" not in cut
    assert "[secret]" in program_error(output("up_secret"))  # the engine's own mask stays


def test_without_a_program_message_the_engines_error_is_shown():
    assert program_error(output("hand_missing_sdk")) == (
        f"{STACK}: error: an unhandled error occurred: program exited with non-zero exit code: 1")


def test_the_cli_errors_outside_the_diagnostics_and_none_at_all():
    streamed = output("up_runerror") + "\nerror: update failed\n"
    assert program_error(streamed) == f"{STACK}: error: {REFUSAL}"
    locked = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
              "delete the lock file with `pulumi cancel`.\n")
    assert program_error(locked).startswith("error: the stack is currently locked")
    assert program_error("Updating (routing):\n\nResources:\n    1 unchanged\n") is None
    assert program_error("") is None


def test_control_characters_from_a_message_are_escaped_and_the_line_is_bounded():
    text = output("up_runerror").replace("so users", "\x1b[31mso\x1b[0m users\u202e") + ""
    line = program_error(text.replace(REFUSAL[:20], REFUSAL[:20] + "x" * 1000))
    assert "\x1b" not in line and "\u202e" not in line and len(line) <= 403
