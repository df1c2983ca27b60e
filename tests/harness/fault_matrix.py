"""The fault matrix: scripts/plan.py run on hundreds of bad inputs, each of which must end cleanly.

Generated, not hand-picked: every config key of both roles with a set of hostile values (through --set), the
YAML forms the CLI accepts or refuses in a stack file (dates, numbers, yes/no, nulls, lists, objects, secrets,
tags) for every key, file-level faults (binary, not UTF-8, huge, /dev/zero, deep nesting, a billion laughs,
duplicate keys, a broken Pulumi.yaml, ...), bad usage (flags, --out paths, stack names, refs) and secrets in
arguments. Each run must end with its expected exit status (0 valid, 1 the program refuses, 2 bad usage, 3 an
internal error, which only injected bugs may cause), one line of error, no traceback, and no secret value in
anything it prints. Secret values hold MARK.

    python -m harness.fault_matrix        # runs every case and prints how each ended
    python -m pytest tests/test_fault_matrix.py   # the same cases as tests; the summary ends the run

plan.py runs in-process (plan.main) against a scratch project per case. Program runs are memoized on their
exact inputs (stack, config, secret keys, the outputs it reads, Pulumi.yaml's defaults): the program is
deterministic, and most cases differ from the base only in one stack, so the others are not re-run. Cases that
inject a bug run unmemoized.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[2]  # the project

from components import program as program_module
from components import stackfile
from bluegreen_tools.secret_values import reveal
from components.config_keys import COLOR_KEYS, COMMON_KEYS, ROUTING_KEYS, SECRET_KEYS
from bluegreen_tools import plan
from bluegreen_tools.plan import diff, render, simulate
from harness.fault_outcomes import Outcome, summary

MARK = "Zq8SecretMark"  # in every secret value given to a case; no output may hold it
CIPHER = "v1:AAAAEnc" + "Zq8Cipher"  # an encrypted value in a stack file: planned as [secret], never shown

BLUE = """config:
  bluegreen:color: blue
  bluegreen:image: registry.example.com/shop:v1.4.0
  bluegreen:replicas: 2
  bluegreen:env:
    DB_USER: shop
  bluegreen:secretEnv:
    DB_PASSWORD:
      secure: {cipher}
"""
GREEN = BLUE.replace("color: blue", "color: green").replace("v1.4.0", "v2.0.0")
ROUTING = """config:
  bluegreen:active: blue
  bluegreen:test: green
  bluegreen:testToken:
    secure: {cipher}
"""
FILES = {"Pulumi.blue.yaml": BLUE.format(cipher=CIPHER), "Pulumi.green.yaml": GREEN.format(cipher=CIPHER),
         "Pulumi.routing.yaml": ROUTING.format(cipher=CIPHER)}

# Hostile text for every key (given with --set, so as the CLI would pass text); a secret key's hold MARK.
HOSTILE = ["x\ny", "\x00", "'\"`$(id);|&", "é日本\u202e", "a" * 300, "[" * 2000 + "]" * 2000]
SECRET_HOSTILE = [MARK + "\n", MARK, MARK + "'\";,\\" * 3, '{"DB_PASSWORD": "' + MARK + '"}', '"' + MARK + '"']
# Values that reach a rule of one key (most of them Istio's, components/rules.py).
KEY_VALUES = {
    "port": ["15021", "15090", "0", "65536", "3000.0"],
    "image": ["myapp@sha256:" + "a" * 63, "myapp@sha512:" + "a" * 64, "myapp@md5:" + "a" * 32, "MyApp:v1"],
    "hosts": ['["shop"]', '["example.123"]', '["' + "a" * 64 + '.example.com"]', '["*", "shop.example.com"]',
              '["shop.example.com."]', '["*.*.example.com"]'],
    "testCookie": ["!" * 600 + "=1", "test", "=x"],
    "testToken": ["short", "x" * 300],
    "replicas": ["-1", "1001"], "timeout": ["0ms", "25h"], "retryOn": ["5xx,,reset"],
    "tls": ['{"credentialName": "Bad_Name"}', '{"hosts": ["other.example.com"], "credentialName": "t"}'],
    "secretEnv": ['{"1BAD": "x"}', '{"DB_PASSWORD": {"nested": "' + MARK + '"}}'],
    "env": ['{"DB_PASSWORD": "x"}', '["NODE_ENV"]'],
}
# How a value may be written in a stack file: YAML the CLI reads (as text or as an object) and YAML it refuses.
YAML_FORMS = ["2024-01-01", "1.0", "yes", "~", "[a, b]", "{a: 1}", "!!binary aGk=", "{secure: " + CIPHER + "}"]


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    expect: frozenset[int]
    files: dict[str, str | bytes] = field(default_factory=lambda: dict(FILES))
    prepare: Optional[Callable[[Path], None]] = None  # makes what the files cannot say (links, directories)
    inject: Optional[Callable[[], contextlib.AbstractContextManager]] = None
    key: Optional[str] = None  # a config key the refusal must name

    @property
    def id(self) -> str:
        return f"{self.group}:{self.name}"


def _only(*names: str) -> dict[str, str]:
    return {name: FILES[name] for name in names}


def _stack_of(key: str) -> str:
    return "routing" if key in ROUTING_KEYS else "blue"


def _files_for(stack: str) -> dict[str, str]:
    # A color stack needs no other stack; the routing stack reads both colors.
    return dict(FILES) if stack == "routing" else _only("Pulumi.blue.yaml")


def _with_value(text: str, key: str, yaml_value: str) -> str:
    return text.rstrip("\n") + f"\n  bluegreen:{key}: {yaml_value}\n" if f"bluegreen:{key}:" not in text else \
        "\n".join(f"  bluegreen:{key}: {yaml_value}" if line.startswith(f"  bluegreen:{key}:") else line
                  for line in _drop_block(text, key).splitlines()) + "\n"


def _drop_block(text: str, key: str) -> str:
    """The stack file without the nested lines under `key` (its value is replaced as a whole)."""
    lines, skipping = [], False
    for line in text.splitlines():
        if skipping and line.startswith("    "):
            continue
        skipping = line.startswith(f"  bluegreen:{key}:") and line.rstrip().endswith(":")
        lines.append(line)
    return "\n".join(lines) + "\n"


def key_cases() -> Iterator[Case]:
    for number, key in enumerate(sorted(COMMON_KEYS | COLOR_KEYS | ROUTING_KEYS)):
        stack = _stack_of(key)
        for index, value in enumerate(HOSTILE + KEY_VALUES.get(key, []) + (SECRET_HOSTILE if key in SECRET_KEYS else [])):
            yield Case("key --set", f"{key}#{index}", ["--stack", stack, "--set", f"{key}={value}"],
                       frozenset({0, 1}), _files_for(stack), key=key)
        file_name = f"Pulumi.{stack}.yaml"
        for index in {number % 8, (number + 3) % 8, (number + 5) % 8}:  # three forms a key, each form for many keys
            form = YAML_FORMS[index]
            files = _files_for(stack)
            files[file_name] = _with_value(files[file_name], key, form)
            refused = form.startswith("!!") or (form.startswith("{secure") and key not in SECRET_KEYS)
            expect = frozenset({1}) if refused else frozenset({0, 1})
            yield Case("key in the stack file", f"{key}#{index}", ["--stack", stack], expect, files, key=key)


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)) + "config: *i\n"


def _link_to(target: str, name: str = "Pulumi.blue.yaml"):
    def prepare(directory: Path) -> None:
        (directory / name).unlink(missing_ok=True)
        (directory / name).symlink_to(target)
    return prepare


def _directory_named(name: str):
    def prepare(directory: Path) -> None:
        (directory / name).unlink(missing_ok=True)
        (directory / name).mkdir()
    return prepare


def file_cases() -> Iterator[Case]:
    blue = FILES["Pulumi.blue.yaml"]
    faults: dict[str, str | bytes] = {
        "binary": b"\x00\xff\xfe\x01\x02 binary",
        "not UTF-8": b"config:\n  bluegreen:app: caf\xe9\n",
        "a NUL byte": blue + "\x00",
        "huge": "config:\n  bluegreen:app: " + "a" * (stackfile.MAX_FILE_BYTES + 10) + "\n",
        "deep nesting": "config:\n  bluegreen:env: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep mapping": "config:\n  bluegreen:env: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
        "a billion laughs": LAUGHS,
        "a billion laughs in a value": LAUGHS.replace("config: *i", "config:\n  bluegreen:env: *i"),
        "a recursive alias": "config:\n  bluegreen:env: &a [*a]\n",
        "duplicate keys": blue + "  bluegreen:color: green\n",
        "a top-level list": "- config\n- bluegreen:color\n",
        "config as a list": "config:\n  - bluegreen:color: blue\n",
        "config as text": "config: blue\n",
        "a scalar document": "just text\n",
        "tabs": "config:\n\tbluegreen:color: blue\n",
        "two documents": blue + "---\n" + blue,
        "a key without namespace": blue + "  replicas: 3\n",
        "an unknown key": blue + "  bluegreen:replica: 3\n",
        "an unclosed quote": "config:\n  bluegreen:app: 'shop\n",
        "a python tag": "config:\n  bluegreen:env: !!python/object/apply:os.system [id]\n",
        "a NaN in an object": "config:\n  bluegreen:env: {A: .nan}\n",
        "a control character": "config:\n  bluegreen:app: \x07\n",
    }
    for name, content in faults.items():
        yield Case("stack file", name, ["--stack", "blue"], frozenset({1}), {**_only("Pulumi.blue.yaml"),
                                                                              "Pulumi.blue.yaml": content})
        yield Case("--config-file", name, ["--stack", "blue", "--config-file", "{dir}/proposed.yaml"],
                   frozenset({1}), {**_only("Pulumi.blue.yaml"), "proposed.yaml": content})
    yield Case("stack file", "empty", ["--stack", "blue"], frozenset({1}), {"Pulumi.blue.yaml": ""})
    yield Case("stack file", "a link to /dev/zero", [], frozenset({1}), _only("Pulumi.green.yaml"),
               prepare=_link_to("/dev/zero"))
    yield Case("stack file", "a link to nowhere", [], frozenset({1}), _only("Pulumi.green.yaml"),
               prepare=_link_to("/nonexistent/file"))
    yield Case("stack file", "a directory", [], frozenset({1}), _only("Pulumi.green.yaml"),
               prepare=_directory_named("Pulumi.blue.yaml"))
    yield Case("stack file", "a name Pulumi refuses", [], frozenset({1}),
               {**_only("Pulumi.blue.yaml"), "Pulumi.a b.yaml": blue})
    for name, content in {"binary": b"\xff\xfe", "a billion laughs": LAUGHS, "config as a list": "config: [a]\n",
                          "no config": "name: bluegreen\n"}.items():
        yield Case("Pulumi.yaml", name, [], frozenset({1}), {**_only("Pulumi.blue.yaml"), "Pulumi.yaml": content})


def _read_only(directory: Path) -> None:
    target = directory / "read-only"
    target.mkdir()
    target.chmod(0o555)
    if os.geteuid() == 0 and shutil.which("chattr"):  # root writes anywhere, except an immutable directory
        subprocess.run(["chattr", "+i", str(target)], capture_output=True)


def _undo_read_only(directory: Path) -> None:
    target = directory / "read-only"
    if target.exists() and os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(target)], capture_output=True)


def _out_holding(make: Callable[[Path], object]):
    """An --out directory where a manifest's file name is already taken."""
    def prepare(directory: Path) -> None:
        (directory / "out").mkdir()
        make(directory / "out" / "routing-service-myapp.yaml")
    return prepare


def usage_cases() -> Iterator[Case]:
    two = frozenset({2})
    for name, argv in {
        "unknown flag": ["--bogus"], "unknown format": ["--format", "yaml"], "flag without value": ["--base"],
        "unknown stack": ["--stack", "purple"], "stack with a slash": ["--stack", "../etc", "--set", "app=x"],
        "stack with a space": ["--stack", "a b"], "empty stack": ["--stack", ""],
        "stack with a newline": ["--stack", "blue\nred"], "--set without --stack": ["--set", "app=x"],
        "--set without =": ["--stack", "blue", "--set", "app"], "--set of another namespace": ["--stack", "blue",
                                                                                               "--set", "aws:region=x"],
        "--set with an empty key": ["--stack", "blue", "--set", "=x"],
        "--config-file missing": ["--stack", "blue", "--config-file", "{dir}/missing.yaml"],
        "--config-file a directory": ["--stack", "blue", "--config-file", "{dir}"],
        "--config-file /dev/zero": ["--stack", "blue", "--config-file", "/dev/zero"],
        "--config-file without --stack": ["--config-file", "{dir}/Pulumi.blue.yaml", "--stack", "blue",
                                          "--stack", "green"],
        "--base no such ref": ["--base", "no-such-ref"], "--base an option": ["--base=--output=/tmp/x"],
        "--base with a NUL": ["--base", "main\x00x"], "--base with a newline": ["--base", "main\nx"],
        "--out empty": ["--out", ""], "--out a file": ["--out", "{dir}/Pulumi.blue.yaml"],
        "--out under a file": ["--out", "{dir}/Pulumi.blue.yaml/manifests"],
        "--out /proc/self": ["--out", "/proc/self"], "--out /dev/null/x": ["--out", "/dev/null/x"],
    }.items():
        yield Case("usage", name, argv, two)
    yield Case("usage", "--out read-only", ["--out", "{dir}/read-only"], two, prepare=_read_only)
    yield Case("usage", "--out holds a link where a manifest goes", ["--out", "{dir}/out"], two,
               prepare=_out_holding(lambda path: path.symlink_to(path.parent.parent / "Pulumi.blue.yaml")))
    yield Case("usage", "--out holds someone else's file", ["--out", "{dir}/out"], two,
               prepare=_out_holding(lambda path: path.write_text("kind: Service\n")))


def secret_cases() -> Iterator[Case]:
    yield Case("secrets", "a secret token given with --set", ["--stack", "routing", "--set", f"testToken={MARK}-0123456789"],
               frozenset({0}))
    yield Case("secrets", "a secret variable given with --set", ["--stack", "blue", "--set",
                                                                 'secretEnv={"DB_PASSWORD": "' + MARK + '"}'],
               frozenset({0}), _only("Pulumi.blue.yaml"))
    yield Case("secrets", "a secret in another namespace", ["--stack", "blue", "--set", f"aws:secret={MARK}"],
               frozenset({2}), _only("Pulumi.blue.yaml"))
    yield Case("secrets", "a secret given without a key", ["--stack", "blue", "--set", MARK], frozenset({2}),
               _only("Pulumi.blue.yaml"))
    yield Case("secrets", "a secret as a flag", [f"--{MARK}"], frozenset({2}))
    yield Case("secrets", "a plain-text token", ["--stack", "routing"], frozenset({1}),
               {**FILES, "Pulumi.routing.yaml": "config:\n  bluegreen:active: blue\n  bluegreen:test: green\n"
                                                f"  bluegreen:testToken: {MARK}-0123456789\n"}, key="testToken")
    for key in ("image", "app", "env", "release"):
        text = _with_value(FILES["Pulumi.blue.yaml"], key, "{secure: " + CIPHER + "}")
        yield Case("secrets", f"{key} stored as a secret", ["--stack", "blue"], frozenset({1}),
                   {"Pulumi.blue.yaml": text}, key=key)
    for fmt in plan.FORMATS:
        yield Case("secrets", f"the shipped secrets in {fmt}", ["--format", fmt, "--out", "{dir}/out"], frozenset({0}))


@contextlib.contextmanager
def _patched(target, name: str, replacement):
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


def _raising(error: BaseException):
    def raise_it(*args, **kwargs):
        raise error
    return raise_it


def internal_cases() -> Iterator[Case]:
    token = f"{MARK}-0123456789"  # a secret of the config, which the bug's message happens to hold
    yield Case("internal", "a bug in the program", ["--stack", "routing", "--set", f"testToken={token}"], frozenset({3}),
               inject=lambda: _patched(program_module, "ColorWorkload", _raising(TypeError(f"bug near {token}"))))
    yield Case("internal", "a bug in the program, in a stack not shown", ["--stack", "blue"], frozenset({3}),
               inject=lambda: _patched(program_module, "BlueGreenRoutes", _raising(AttributeError("routes"))))
    yield Case("internal", "a bug in the route table", ["--format", "json"], frozenset({3}),
               inject=lambda: _patched(diff, "route_table", _raising(KeyError("http"))))
    yield Case("internal", "a bug in the markdown", ["--format", "markdown"], frozenset({3}),
               inject=lambda: _patched(render.Markdown, "title", _raising(ValueError("bad\nmultiline"))))
    yield Case("internal", "out of memory", [], frozenset({3}),
               inject=lambda: _patched(plan, "plan_stacks", _raising(MemoryError())))


def cases() -> list[Case]:
    return [*key_cases(), *file_cases(), *usage_cases(), *secret_cases(), *internal_cases()]


# ---------------------------------------------------------------- running a case

_memo: dict[str, object] = {}


def memoized(real):
    """run_program, with a run whose inputs an earlier run had taken from the memo: the program is deterministic."""
    def run(stack, config, secret_keys=frozenset(), stack_outputs=None, deployments_ready=True, live=None,
            defaults=None):
        key = json.dumps([stack, sorted(config.items()), sorted(secret_keys), reveal(stack_outputs or {}),
                          deployments_ready, live, defaults], sort_keys=True, default=repr)
        if key not in _memo:
            _memo[key] = real(stack, config, secret_keys, stack_outputs, deployments_ready, live, defaults)
        return _memo[key]
    run.__wrapped__ = real
    return run


def write_project(directory: Path, case: Case) -> None:
    for name, content in case.files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8", "surrogateescape"))
    (directory / "Pulumi.yaml").exists() or shutil.copyfile(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")


def run_case(case: Case, directory: Path) -> Outcome:
    """Run plan.main for the case in `directory` (a scratch project) and check how it ended."""
    write_project(directory, case)
    if case.prepare:
        case.prepare(directory)
    argv = [arg.replace("{dir}", str(directory)) for arg in case.argv]
    out, err = io.StringIO(), io.StringIO()
    saved = plan.ROOT, simulate.run_program
    plan.ROOT = directory  # plan.py reads the case's Pulumi.yaml there, its own or a copy of the real one
    simulate.run_program = saved[1] if case.inject else memoized(saved[1])  # an injected bug is not in the memo's key
    try:
        with contextlib.ExitStack() as stack:
            if case.inject:
                stack.enter_context(case.inject())
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            try:
                code = plan.main(argv)
            except SystemExit as exit:  # argparse's --help; its errors return through plan.main's parser
                code = exit.code
            except BaseException:  # what a process would print as a traceback, exiting 1
                err.write(traceback.format_exc())
                code = 1
    finally:
        plan.ROOT, simulate.run_program = saved
        _undo_read_only(directory)
    return Outcome(code, check(case, code, out.getvalue(), err.getvalue(), directory))


def check(case: Case, code: int, out: str, err: str, directory: Path) -> list[str]:
    problems = []
    if code not in case.expect:
        problems.append(f"exit {code}, expected {sorted(case.expect)}")
    if "Traceback" in out + err:
        problems.append("a traceback")
    if MARK in out + err or CIPHER in out + err:
        problems.append("a secret value in the output")
    error_lines = [line for line in err.splitlines() if line and not line.startswith("plan.py: wrote ")]
    if code in (2, 3, 130):
        prefix = "plan.py: internal error: " if code == 3 else "plan.py: "
        if len(error_lines) != 1 or not error_lines[0].startswith(prefix) or out:
            problems.append(f"not one line of error on stderr (and nothing on stdout): {err[:200]!r}")
    elif error_lines:
        problems.append(f"something on stderr: {err[:200]!r}")
    if code == 1:
        problems += refusal_problems(case, argv_format(case.argv), out)
    if code == 0 and "--out" in case.argv and "wrote " not in err:
        problems.append("it did not say where it wrote the manifests")
    return problems


def argv_format(argv: list[str]) -> str:
    return argv[argv.index("--format") + 1] if "--format" in argv else "text"


def refusal_problems(case: Case, fmt: str, out: str) -> list[str]:
    """The refusal is shown as one line that names the key (for a key's case) or the file, with the fix."""
    if fmt != "text":
        return []
    lines = out.splitlines()
    refused = [i for i, line in enumerate(lines) if line.endswith(": REFUSED")]
    if not refused:
        return ["exit 1 without a refused stack"]
    problems = []
    for index in refused:
        message = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if not message or not ("Fix:" in message or "is not a Pulumi stack file the CLI can read" in message
                               or "which Pulumi refuses" in message):
            problems.append(f"the refusal is not one line with the fix: {message[:200]!r}")
        if index + 2 < len(lines) and lines[index + 2].strip() and not lines[index + 2].startswith(("  ", "Plan")):
            problems.append("the refusal spans more than one line")
    named = [f"bluegreen:{case.key}" in lines[i + 1] or ("the CLI can read" in lines[i + 1] and "(line " in lines[i + 1])
             for i in refused if i + 1 < len(lines)]
    if case.key and not any(named):  # a key's value refused by name, or the file refused at a line
        problems.append(f"the refusal names neither bluegreen:{case.key} nor where in the file")
    return problems


def main() -> int:
    outcomes = {}
    for case in cases():
        with tempfile.TemporaryDirectory(prefix="fault-matrix-") as directory:
            outcomes[case.id] = run_case(case, Path(directory))
    print("\n".join(summary(outcomes)))
    return 1 if any(outcome.problems for outcome in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
