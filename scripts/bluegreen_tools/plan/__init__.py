"""Offline plan: who will reach which color, and which objects change, with no cluster at all.

    python scripts/plan.py [--stack NAME ...] [--config-file FILE] [--set KEY[.PATH]=VALUE ...]
                           [--base GIT_REF] [--out DIR] [--format text|markdown|json]

Runs the real program (main, as __main__.py runs it) for each stack under Pulumi's mock engine
(scripts/bluegreen_tools/offline.py): no cluster, no cloud credentials, no Pulumi CLI. Config comes from
Pulumi.<stack>.yaml and Pulumi.yaml's defaults, injected as the CLI injects them; values stored as
secrets cannot be decrypted offline and are planned as "[secret]". A StackReference reads the local
stack file of the stack it names, planned here: the routing stack reads the color stacks' outputs
(their pods' readiness is assumed, and the output says so); a color stack reads the routing stack
from its file, or, with --base, as it is at that ref (what is live before the merge).

Exit status: 0 the plan is valid; 1 the program would refuse a stack's config (its message is
printed); 2 bad usage (including an --out it cannot write); 3 an internal error (a bug: one line, naming
the log file that holds its traceback). Every error is one line; no secret value appears in any output or message.

The jobs, one module each: simulate.py (config, and the program run for every stack), diff.py (the report of a
stack, against the base), render.py (text, markdown, JSON, manifests). This module is the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from components.settings import SettingsError, declared_defaults

from .. import ROOT
from ..cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Secrets, Session, run_main
from .diff import stack_report
from .errors import UsageError, one_line
from .render import FORMATS, plural, prepare_out, render_report, write_manifests
from .render import GENERATED, MARKER  # noqa: F401 - what CI and the tests know plan.py's output by
from .simulate import (GitRef, StackConfig, StackPlan, defaults_at, http_routes_of, plan_stacks, refused_for,
                       stack_name_problem, stack_names, with_overrides, working_tree_configs)

EXIT_VALID, EXIT_REFUSED = EXIT_OK, EXIT_FAILED  # cli's one table, in plan's words


# ---------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (and exit 2), never echoing an argument that may be a value."""

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            flags = [arg for arg in extras if re.fullmatch(r"--?[a-z][a-z-]{0,30}", arg)]
            hidden = len(extras) - len(flags)
            self.error("unrecognized arguments: " + ", ".join(
                flags + ([f"{hidden} not shown (not a flag, so perhaps a value)"] if hidden else [])))
        return namespace

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"plan.py: error: {one_line(message)} (plan.py --help shows the usage)\n")


def directory_argument(text: str) -> Path:
    """--out's value: Path('') would silently mean the current directory, so an empty one is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no directory; e.g. --out plan-manifests")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="plan.py", description="Plan the stacks offline: who reaches which color, and what objects change.",
        epilog="Exit status: 0 valid, 1 the program would refuse a stack's config, 2 bad usage, 3 an internal error.")
    parser.add_argument("--stack", action="extend", nargs="+", default=[], metavar="NAME",
                        help="stack(s) to show (default: every Pulumi.<stack>.yaml); all are planned, since "
                             "stacks read each other")
    parser.add_argument("--config-file", type=Path, metavar="FILE",
                        help="use FILE instead of Pulumi.<stack>.yaml for the one --stack given")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="assignments",
                        help="override a config key of the one --stack given: objects and lists as JSON, or one "
                             "value inside them by path, as pulumi config set --path takes it (tls.credentialName=NAME, "
                             "'analysis.queries[0].max=1')")
    parser.add_argument("--base", metavar="GIT_REF", help="also plan the stack files at this ref, and show the difference")
    parser.add_argument("--out", type=directory_argument, metavar="DIR",
                        help="write every object as a YAML manifest, one file each (it says where on stderr)")
    parser.add_argument("--format", choices=FORMATS, default="text")
    return parser


def make_report(args: argparse.Namespace, secrets: Optional[Secrets] = None) -> dict[str, Any]:
    """The plan of every stack; `secrets` gets every secret value as soon as it is read, so that even an
    internal error's message can be redacted."""
    secrets = Secrets() if secrets is None else secrets
    configs = working_tree_configs(ROOT)
    chosen = list(dict.fromkeys(args.stack))
    for name in chosen:
        problem = stack_name_problem(name)
        if problem:
            raise UsageError(f"--stack {name[:60]!r}: {problem}")
    if args.config_file is not None and not chosen:
        chosen = [name for name in stack_names([args.config_file.name]) if not stack_name_problem(name)]
    if (args.config_file is not None or args.assignments) and len(chosen) != 1:
        raise UsageError("--config-file and --set change one stack's config: name it with exactly one --stack")
    if args.config_file is not None and not args.config_file.is_file():
        raise UsageError(f"--config-file {args.config_file}: no such file (or not a regular file)")
    for name in chosen:
        if name not in configs and args.config_file is None:
            raise UsageError(f"--stack {name}: there is no Pulumi.{name}.yaml (stacks: {', '.join(configs) or 'none'})")
    if chosen and (args.config_file is not None or args.assignments):
        name = chosen[0]
        configs[name] = with_overrides(configs.get(name, StackConfig(name, f"Pulumi.{name}.yaml")),
                                       args.config_file, args.assignments)
    secrets.update(secret_values(configs.values()))
    try:  # the planned project's Pulumi.yaml, as the CLI reads it before it runs any stack
        defaults, unreadable = declared_defaults(ROOT / "Pulumi.yaml"), None
    except SettingsError as error:
        defaults, unreadable = {}, str(error)
    configs = refused_for(configs, unreadable)

    notes: list[str] = []
    before: dict[str, StackPlan] = {}
    # A scratch folder for the base's files: only a plan with --base has any.
    with tempfile.TemporaryDirectory(prefix="bluegreen-plan-") if args.base else contextlib.nullcontext() as workdir:
        if args.base:
            ref = GitRef(args.base, Path(workdir), ROOT)
            base_configs = refused_for(ref.configs(), unreadable)
            secrets.update(secret_values(base_configs.values()))
            before = plan_stacks(base_configs, defaults_at(ref.file("Pulumi.yaml"), defaults, notes, args.base))
            if ref.differs("__main__.py", "components"):
                notes.append(f"The program's code changed since {args.base}; both plans run today's code, so the "
                             f"changes listed are those of the config only.")
            gone = sorted(set(base_configs) - set(configs))
            notes += [f"Stack {name} has a file at {args.base} but none now; its objects stay in the cluster "
                      f"until pulumi destroy -s {name}." for name in gone]
        plans = plan_stacks(configs, defaults, before if args.base else None, args.base or "")
    for planned in [*plans.values(), *before.values()]:
        planned.problem  # noqa: B018 - raises InternalError for a program bug, even in a stack not shown
    shown = chosen or sorted(plans, key=lambda name: not http_routes_of(plans[name]))  # the routes first
    return {"base": args.base, "valid": all(plans[name].problem is None for name in shown), "notes": notes,
            "stacks": {name: stack_report(plans[name], before.get(name), args.base) for name in shown}}


def secret_values(configs) -> set[str]:
    """Every value held in a secret key (set with --set, or planned as UNDECRYPTED): no output may show one."""
    found: set[str] = set()

    def leaves(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                leaves(item)
        elif isinstance(value, list):
            for item in value:
                leaves(item)
        elif value is not None and len(str(value)) >= 8:  # shorter ones would garble the output; masking hides them
            found.add(str(value))

    for config in configs:
        for key in config.secret_keys:
            text = config.raw.get(key, "")
            leaves(text)
            try:
                leaves(json.loads(text))
            except (ValueError, RecursionError):
                pass
    return found


def main(argv: Optional[list[str]] = None) -> int:
    """plan.py inside the scripts' one error boundary: its lines begin "plan.py: ", and every secret value read
    is redacted from them."""
    session = Session("plan", prefix="plan.py: ")
    return run_main(lambda: _plan(argv, session), session)


def _plan(argv: Optional[list[str]], session: Session) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on bad usage, with one line
    if args.out is not None:
        prepare_out(args.out)
    report = make_report(args, session.secrets)
    output = session.secrets.redact(render_report(report, args.format))
    code = EXIT_VALID if report["valid"] else EXIT_REFUSED
    if args.out is not None:
        written = write_manifests(args.out, report)
        print(f"plan.py: wrote {plural(len(written), 'manifest')} to {args.out}{os.sep}", file=sys.stderr)
    try:
        sys.stdout.write(output)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (plan.py | head): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code
