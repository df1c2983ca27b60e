"""`python -m sandbox --help`: build, start and stop the sandbox (the real engine and a local control plane).

  build                 build the pinned pieces into a cache outside the repo (a no-op when up to date)
  up --env-file FILE    start the control plane on 127.0.0.1 and a Pulumi file backend; write
     [--gateway-namespace NS]
                        `export NAME=value` lines to FILE (source it to use the sandbox); $BLUEGREEN_URL
                        is the ingress gateway of namespace NS (default: default, the stacks' default)
  down --env-file FILE  stop what `up` started and remove its state (harmless when repeated)

Exit status: 0 done, 1 failed (the message says why and what to run), 2 bad usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Optional, Sequence

from bluegreen_tools.cli import run_main
from components.rules import DNS1123_LABEL, MAX_LABEL_LENGTH

from .build import build
from .cluster import down, up


def namespace_name(text: str) -> str:
    if len(text) > MAX_LABEL_LENGTH or not DNS1123_LABEL.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Kubernetes namespace name: use lowercase letters, digits "
                                         f"and '-', at most {MAX_LABEL_LENGTH}, starting and ending with a letter or digit")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit status: 0 done, 1 failed, 2 bad usage.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = commands.add_parser("build", help="build the pinned pieces into the cache (a no-op when up to date)")
    sub.set_defaults(handler=build)
    for name, handler, text in (("up", up, "start the sandbox; write its environment to FILE"),
                                ("down", down, "stop the sandbox named in FILE and remove its state")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--env-file", required=True, metavar="FILE", help="the file of `export NAME=value` lines")
        sub.set_defaults(handler=handler)
        if name == "up":
            sub.add_argument("--gateway-namespace", default="default", metavar="NS", type=namespace_name,
                             help="the namespace whose Istio Gateways $BLUEGREEN_URL serves: the stacks' `namespace` "
                                  "(default: default); istiod scopes each gateway to its own namespace")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)  # a CI that cancels us gets the same clean-up as Ctrl-C
    return args.handler(args)


def _interrupted(signum: int, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(run_main(main))
