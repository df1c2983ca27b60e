"""unlock: give back the release record that a crashed run left, without finishing or undoing its release
(resume and abort do that), then say what is left to put back by hand."""

from __future__ import annotations

import argparse

from ...cli import EXIT_OK, Failure
from ...record import RecordError
from ...record.kubectl import KubectlError
from ..hold import holder_gone_here, record_store
from ..report import advise
from ..runner import Runner

HELP = ("Give back the release record that a crashed run left, as it is (`resume` or `abort` finish or undo its "
        "release instead), then say what is left to put back by hand.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="give it back even while its holder still renews it")


def run(args: argparse.Namespace, runner: Runner) -> int:
    store = record_store(runner, args.routing_stack)
    try:
        lease = store.read()
    except RecordError as error:  # unreadable: only removing it helps, and nothing else can read it either
        if not args.force:
            raise Failure(f"{error}; `python scripts/release.py unlock --force` deletes it") from None
        try:
            store.kubectl.call("delete", "lease", store.name, "-n", store.namespace)
        except KubectlError as failure:
            raise Failure(f"cannot delete {store.where}: {failure}") from None
        runner.log(f"deleted {store.where}, which held no readable record")
        advise(runner, args)
        return EXIT_OK
    if lease is None or lease.free:
        runner.log("no release record is held")
    else:
        if not (lease.expired() or holder_gone_here(lease) or args.force):
            raise Failure(f"{lease.describe()}. Its run still renews it: wait for it, or stop it (`kill -INT "
                          f"{lease.record.pid}` on {lease.record.host}: it puts the routing back and gives the record "
                          "back itself); --force gives it back anyway")
        record = lease.record
        taken = store.take_over(lease, "unlock", record.host, record.pid, holder_gone=True)
        store.finish(taken, taken.record, went_live=False)
        runner.log(f"gave back the release record ({record.describe()}), its release neither finished nor undone")
    advise(runner, args)
    return EXIT_OK


