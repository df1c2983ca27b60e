"""A record this run holds: its phase moved forward and its lease renewed, every write a compare-and-swap,
one at a time (the renewal thread and the release steps share the lease's version)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from .lease import Lease, LeaseStore, LostCas, RecordError, ReleaseRecord
from .phases import DONE


class HeldRecord:
    """The record, as this run last wrote it. `lost`: why it is no longer this run's (None while it is)."""

    def __init__(self, store: LeaseStore, lease: Lease):
        if lease.record is None:
            raise RecordError(f"{lease.where} holds no release record")
        self.store, self._lease = store, lease
        self._lock = threading.Lock()
        self.lost: Optional[str] = None
        self.renew_error: Optional[str] = None  # the last renewal that failed without losing the CAS
        self.released = False

    @property
    def lease(self) -> Lease:
        return self._lease

    @property
    def record(self) -> ReleaseRecord:
        assert self._lease.record is not None
        return self._lease.record

    def _write(self, change: Callable[[ReleaseRecord], ReleaseRecord]) -> ReleaseRecord:
        with self._lock:
            if self.lost or self.released:
                raise LostCas(self.lost or "the release record was already released by this run")
            try:
                self._lease = self.store.write(self._lease, change(self.record))
            except LostCas as error:
                self.lost = str(error)
                raise
            return self.record

    def advance(self, phase: str) -> ReleaseRecord:
        """Move to `phase` (forward only) before the step acts: PhaseError, LostCas or RecordError if not."""
        return self._write(lambda record: record.moved(phase))

    def note_summary(self, summary: str) -> ReleaseRecord:
        return self._write(lambda record: record.with_summary(summary))

    def renew(self) -> None:
        self._write(lambda record: record)

    def release(self, phase: str = DONE) -> None:
        """Give the record back, finished in `phase` (done or aborted), if it is still the version this run
        wrote: LostCas if not. A release that ends done is also the last one that went live."""
        with self._lock:
            if self.released:
                return
            if self.lost:
                raise LostCas(self.lost)
            try:
                self._lease = self.store.finish(self._lease, self.record.moved(phase),
                                                went_live=phase == DONE and self.record.kind != "decommission")
            except LostCas as error:
                self.lost = str(error)
                raise
            self.released = True

    @contextmanager
    def renewing(self, interval: Optional[float] = None,
                 on_lost: Optional[Callable[[str], None]] = None) -> Iterator["HeldRecord"]:
        """Renew every leaseDurationSeconds / 3 while the block runs; stop when it ends. A lost CAS stops
        the renewals, sets `lost` and calls on_lost (from the renewal thread: it must only note it)."""
        every = interval if interval is not None else self.store.duration / 3
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.renew()
                    self.renew_error = None
                except LostCas as error:
                    if on_lost is not None and not stop.is_set():
                        on_lost(str(error))
                    return
                except RecordError as error:  # the API server away for a moment: the next tick tries again
                    self.renew_error = str(error)

        thread = threading.Thread(target=loop, name="bluegreen-record-renewal", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
