"""One page of a list: which rows (``offset``, ``limit``) and what a page says about the whole.

Every list the console and the HTTP API show (cases, promises, the social inbox, contact-policy
violations, a customer's timeline) is cut the same way, so a client pages them all alike: a
document carries ``total`` (every row matching the filters, before the cut), ``offset`` and
``limit`` beside the page's rows. ``limit`` None is "every row": what the CLI's ``--json``
prints, because scripts read the whole list and must never lose rows to a default.

Offsets, not cursors: the lists are ordered by what *now* makes of them (overdue first), so
there is no stored key to continue after; an offset is what "101-200 of 2,412" means to the
person reading the page (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

#: Rows on a page when the caller does not say (the HTTP API's default).
DEFAULT_LIMIT: Final = 100
#: The most rows one page may hold: a longer list is paged, never sent whole over HTTP.
MAX_LIMIT: Final = 1000

T = TypeVar("T")


class PagingError(ValueError):
    """A negative offset or a limit below 1: a caller's mistake, named with the value."""


@dataclass(frozen=True, slots=True)
class Page:
    """Rows ``offset`` .. ``offset + limit - 1`` (0-based) of a list; ``limit`` None: all of
    them from ``offset`` on."""

    offset: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise PagingError(f"offset: {self.offset} is negative (the first row is offset 0)")
        if self.limit is not None and self.limit < 1:
            raise PagingError(f"limit: {self.limit} is not a number of rows (at least 1)")

    def cut(self, rows: Sequence[T]) -> list[T]:
        """This page of ``rows`` (the whole list, in order); empty past its end."""
        end = None if self.limit is None else self.offset + self.limit
        return list(rows[self.offset:end])

    def sql(self) -> tuple[str, list[int]]:
        """The ``LIMIT ? OFFSET ?`` clause for a query ordered to the end, and its parameters."""
        if self.limit is None:
            return " OFFSET ?", [self.offset]
        return " LIMIT ? OFFSET ?", [self.limit, self.offset]

    def fields(self, total: int) -> dict[str, Any]:
        """What a paged document says about its page: ``total``, ``offset``, ``limit``."""
        return {"total": total, "offset": self.offset, "limit": self.limit}


#: Every row: the CLI's ``--json`` default.
EVERYTHING: Final = Page()
