"""Which commands need what: a ledger to read, the analyst snapshot, or the projections (and so
are run by the data directory's server while one runs); and what a command is."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from journey.bootstrap import Journey

#: A command's function: the parsed arguments and the open ledger in, the exit code out.
Command = Callable[[argparse.Namespace, Journey], int]

#: Commands that only read the ledger: they refuse a data directory without one, where the
#: others (append, ingest, serve...) start a new ledger.
READERS = frozenset({"customer", "status", "can-contact", "violations", "cases", "case", "promises",
                     "inbox", "warranty", "greetings", "verify", "subject-access", "export",
                     "quarantine"})
#: Commands that read the analyst snapshot only: without a data directory there is none (they
#: say so, as in a ledger never exported, and make no ledger on the spot).
SNAPSHOT_READERS = frozenset({"sql", "plot"})
#: Commands that read the projections (or follow the store into them): beside a running
#: ``journey serve``, which holds them, they run inside it. ``append`` is not one: it records
#: here and leaves the projecting to the server. Those with ``--source kafka`` never are.
SERVED = frozenset({"customer", "project", "status", "can-contact", "violations", "cases", "case",
                    "promises", "inbox", "warranty", "greetings", "subject-access", "export",
                    "merge", "unmerge", "forget", "quarantine"})
