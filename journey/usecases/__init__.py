"""The use-case layer: what the ledger does for its users, one module per capability.

Every entrance calls these functions and nothing else of the layers beneath: the CLI
(journey/cli/), the HTTP API and the console's server (journey/api/), the server's duties, and
the Python API (:func:`journey.bootstrap.open_ledger`). A use case takes the wired
:class:`journey.system.System` and plain values, and returns plain values (dicts, dataclasses)
that an entrance prints, serialises or renders; it never parses arguments, prints, or knows
HTTP. docs/architecture.md maps which module holds which rule.
"""
