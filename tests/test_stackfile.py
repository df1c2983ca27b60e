"""components/stackfile.py: stack files read as the Pulumi CLI reads them, and hostile files refused in one line."""

from __future__ import annotations

import json
import re
import time

import pytest

from components import stackfile
from bluegreen_tools.stack_config import UNDECRYPTED, stack_file_config, with_declared_defaults
from components.stackfile import StackFileError, load_yaml, stack_config


def config_of(tmp_path, text: str, binary: bytes = b""):
    path = tmp_path / "Pulumi.blue.yaml"
    path.write_bytes(binary or text.encode())
    return stack_file_config(path)


@pytest.mark.parametrize("written, passed", [
    ("2024-01-01", "2024-01-01"),  # a date: the CLI passes the text, yaml.v3 keeps timestamps as text
    ("1.0", "1.0"),                # a number: as written, not 1
    ("yes", "yes"), ("on", "on"),   # YAML 1.1 booleans are text to yaml.v3
    ("true", "true"), ("0x10", "0x10"), ("1e3", "1e3"), (".inf", ".inf"),
    ("", ""), ("~", ""), ("null", ""),  # an empty value is ""
    ("'null'", "null"), ('"2024-01-01"', "2024-01-01"), ("!!str 5", "5"),
])
def test_a_scalar_is_passed_as_written(tmp_path, written, passed):
    raw, secret = config_of(tmp_path, f"config:\n  bluegreen:release: {written}\n")
    assert raw == {"release": passed} and secret == frozenset()


def test_objects_are_json_with_yaml_1_2_types(tmp_path):
    raw, _ = config_of(tmp_path, "config:\n  bluegreen:env:\n    A: 2024-01-01\n    B: yes\n    C: 5432\n"
                                 "    D: true\n    E: ~\n    1: x\n")
    assert json.loads(raw["env"]) == {"A": "2024-01-01", "B": "yes", "C": 5432, "D": True, "E": None, "1": "x"}


def test_secure_values_are_secret_and_never_read(tmp_path):
    raw, secret = config_of(tmp_path, "config:\n  bluegreen:testToken:\n    secure: v1:abc\n"
                                      "  bluegreen:secretEnv:\n    DB_PASSWORD:\n      secure: v1:def\n")
    assert raw["testToken"] == UNDECRYPTED and json.loads(raw["secretEnv"]) == {"DB_PASSWORD": UNDECRYPTED}
    assert secret == {"testToken", "secretEnv"} and "v1:" not in json.dumps(raw)


def test_other_namespaces_are_ignored_and_the_old_config_form_is_read(tmp_path):
    raw, _ = config_of(tmp_path, "config:\n  kubernetes:context: kind\n  bluegreen:config:replicas: 3\n")
    assert raw == {"replicas": "3"}


def test_an_anchor_and_a_merge_key_are_read(tmp_path):
    raw, _ = config_of(tmp_path, "base: &env {A: '1'}\nconfig:\n  bluegreen:env: {<<: *env, B: '2'}\n")
    assert json.loads(raw["env"]) == {"A": "1", "B": "2"}
    # A key of the mapping itself wins over a merged one, as in yaml.v3: not a key given twice.
    raw, _ = config_of(tmp_path, "base: &env {A: '1'}\nconfig:\n  bluegreen:env: {<<: *env, A: '2'}\n")
    assert json.loads(raw["env"]) == {"A": "2"}


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)) + "config: *i\n"


@pytest.mark.parametrize("content, problem", [
    (LAUGHS, "more than 100000 values once its aliases are expanded"),
    ("config:\n  bluegreen:env: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels deep"),
    ("config:\n  bluegreen:env: " + "[" * 50000 + "]" * 50000 + "\n", "nest"),  # libyaml's own limit, or ours
    ("config:\n  bluegreen:app: a\n  bluegreen:app: b\n", "the key 'bluegreen:app' is given twice"),
    ("config:\n  bluegreen:env: {A: 1, A: 2}\n", "the key 'A' is given twice"),
    ("config:\n  bluegreen:env: {A: .nan}\n", "which JSON (and so a Pulumi config object) cannot hold"),
    ("config:\n  bluegreen:env: {A: !!binary aGk=}\n", "the tag !!binary"),
    ("config:\n  bluegreen:env: {A: !!timestamp 2024-01-01}\n", "the tag !!timestamp"),
    ("config:\n  bluegreen:env: {A: !!python/object:os.system x}\n", "could not determine a constructor"),
    ("config:\n  bluegreen:image: !!int abc\n", "tagged !!int that is not a number"),
    ("config:\n  bluegreen:env: {[1]: x}\n", "a key that is a list or an object"),
    ("config:\n  replicas: 3\n", "'replicas' is not of the form namespace:key"),
    ("config: [a, b]\n", "its config: is not a mapping"),
    ("- config\n", "its top level must be a mapping"),
    ("config: *nothing\n", "found undefined alias"),
    ("config:\n  bluegreen:env: &a [*a]\n", "it has an alias inside the value it stands for"),  # yaml.v3 refuses too
    ("config:\n  bluegreen:env: {<<: {A: 1}, B: 1, B: 2}\n", "the key 'B' is given twice"),
    ("config:\n\tbluegreen:app: a\n", "not valid YAML"),
    ("a: 1\n---\nb: 2\n", "expected a single document"),
    ("config:\n  bluegreen:app: \x07\n", "not valid YAML"),
])
def test_a_hostile_file_is_refused_in_one_line(tmp_path, content, problem):
    """A billion laughs is refused by its alias count while parsing, never expanded (its message says so): a
    wall-clock bound here would only measure the machine's load."""
    with pytest.raises(StackFileError) as caught:
        config_of(tmp_path, content)
    message = str(caught.value)
    assert problem in message and "\n" not in message


@pytest.mark.parametrize("data, problem", [
    (b"\x00\xff\xfe\x01 binary", "not UTF-8 text (byte 2 is not)"),
    (b"config: {}\x00\n", "it holds a NUL byte"),
    (b"config:\n  bluegreen:app: " + b"a" * (stackfile.MAX_FILE_BYTES + 1), "larger than 1024 KiB"),
])
def test_a_binary_or_huge_file_is_refused(tmp_path, data, problem):
    with pytest.raises(StackFileError, match=re.escape(problem)):
        config_of(tmp_path, "", data)


def test_an_unreadable_path_and_dev_zero_are_refused_quickly(tmp_path):
    with pytest.raises(StackFileError, match="cannot be read"):
        stack_file_config(tmp_path / "missing.yaml")
    with pytest.raises(StackFileError, match="cannot be read"):
        stack_file_config(tmp_path)  # a directory
    start = time.monotonic()
    with pytest.raises(StackFileError, match="larger than"):
        stack_file_config(stackfile.Path("/dev/zero"))
    assert time.monotonic() - start < 2


def test_a_byte_order_mark_and_an_empty_file_are_fine(tmp_path):
    assert config_of(tmp_path, "", "\ufeffconfig:\n  bluegreen:app: shop\n".encode())[0] == {"app": "shop"}
    assert config_of(tmp_path, "# nothing yet\n")[0] == {}
    assert stack_config("config:\n") == {} and load_yaml("") is None


def test_declared_defaults_are_injected_as_text_as_the_cli_passes_them():
    defaults = {"replicas": 1, "allowLiveUpdate": False, "hosts": ["*"], "testCookie": "test=true", "image": "",
                "required": None}  # a key declared without a default: the CLI requires it, and injects nothing
    assert with_declared_defaults({"replicas": "3", "env": "{}"}, defaults) == {
        "replicas": "3", "env": "{}", "allowLiveUpdate": "false", "hosts": '["*"]', "testCookie": "test=true",
        "image": ""}
