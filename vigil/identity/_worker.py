"""The durable worker: claims submitted verification sessions from the store and runs them.

Durability comes from the store's claims (see :mod:`vigil.store._identity`): a claim is a
lease with a random token; while a check runs, a heartbeat renews the lease; the result is
written only if the token still holds, together with the status change. So:

- a worker that dies mid-check (killed, machine lost) stops renewing; its lease runs out and
  another worker (or the same service restarted) claims the session and runs it again;
- a worker that was only slow, and comes back after another took over, writes nothing and
  observes nothing: each attempt ends once, with its side effects recorded once;
- several workers (threads, processes, machines) can share one store.

The service runs one worker thread per process; ``vigil identity worker`` runs one alone.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from vigil.identity._sessions import VerificationSessions
from vigil.store import Claim

log = logging.getLogger("vigil.identity")


class Worker:
    """Claims and processes verification sessions until stopped.

    ``poll`` is how long, in seconds, an idle worker waits before looking again (a submit in
    the same process wakes it at once). ``heartbeat`` renews a running claim every this many
    seconds (default: a third of the lease); ``None`` turns renewals off (tests use it to
    play a worker that died).
    """

    def __init__(self, sessions: VerificationSessions, *, poll: float = 0.5,
                 heartbeat: float | str | None = "auto") -> None:
        self.sessions = sessions
        self.poll = poll
        lease = sessions.lease.total_seconds()
        self.heartbeat = lease / 3 if heartbeat == "auto" else heartbeat
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.processed = 0

    def run_once(self) -> str | None:
        """Claim one session and process it; returns its id, or None when none was waiting
        (or the result was not written because the claim was lost)."""
        store = self.sessions.store
        claim = store.claim_verification_session(self.sessions.lease)
        if claim is None:
            return None
        beat = _Heartbeat(self.sessions, claim, self.heartbeat)
        try:
            outcome = self.sessions.process(claim.session_id, claim)
        finally:
            beat.stop()
        if outcome is None:
            log.warning("identity: lost the claim on %s (taken over or canceled); its result "
                        "was not written", claim.session_id)
            return None
        self.processed += 1
        return claim.session_id

    def run_until_idle(self) -> int:
        """Process sessions until none is waiting; returns how many were written."""
        done = 0
        while self.run_once() is not None:
            done += 1
        return done

    def run_forever(self) -> None:
        """Process sessions until :meth:`stop`; errors are logged and retried after ``poll``."""
        while not self._stop.is_set():
            try:
                busy = self.run_once() is not None
            except Exception:  # the store is down, a key is missing: log, wait, retry
                log.exception("identity worker: processing failed; retrying in %.1fs",
                              self.poll)
                busy = False
            if not busy:
                self._wake.wait(self.poll)
                self._wake.clear()

    def wake(self) -> None:
        """Look for work now (called on submit)."""
        self._wake.set()

    def start(self) -> Worker:
        """Run :meth:`run_forever` on a daemon thread; returns self."""
        self.sessions.submitted = self.wake
        self._thread = threading.Thread(target=self.run_forever, name="vigil-identity-worker",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the session in hand (an unfinished one is taken up again later)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


class _Heartbeat:
    """Renews a claim's lease every ``every`` seconds while a check runs."""

    def __init__(self, sessions: VerificationSessions, claim: Claim,
                 every: float | None) -> None:
        self._sessions, self._claim = sessions, claim
        self._done = threading.Event()
        self._thread = None
        if every:
            self._thread = threading.Thread(target=self._run, args=(every,), daemon=True,
                                            name="vigil-identity-heartbeat")
            self._thread.start()

    def _run(self, every: float) -> None:
        lease: timedelta = self._sessions.lease
        while not self._done.wait(every):
            try:
                if self._sessions.store.renew_verification_claim(self._claim, lease) is None:
                    return  # lost: the result will not be written either
            except Exception:  # pragma: no cover - the store hiccuped; the next beat retries
                log.exception("identity worker: renewing the lease failed")

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
