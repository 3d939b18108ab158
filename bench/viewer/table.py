"""The examples table: filter, search, sort and page the rows of a run (against RUN_B).

Everything happens on the compact :class:`bench.viewer.runs.Row` list in memory: on 5,000
rows a filter, sort and page take a few milliseconds, so every page is rendered whole on
the server. A query string that asks for something impossible (an unknown sort key, a
page past the end, an IoU bound that is not a number) falls back to the default for that
field and is reported in :attr:`TablePage.notes` instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.report.paired import change_of
from bench.viewer.runs import Row

PER_PAGE = (25, 50, 100, 200)
SORT_KEYS = (
    "index",
    "iou",
    "iou_b",
    "delta",
    "iterations",
    "seconds",
    "conf",
    "usd",
    "stop_reason",
    "example_id",
)
CHANGES = ("improved", "degraded", "unchanged", "only_a")
FAILED = ("yes", "no")


@dataclass(frozen=True)
class TableQuery:
    """What the table shows; built from the run page's query string by :meth:`parse`."""

    sort: str = "index"
    desc: bool = False
    stop: str = ""
    iou_min: float | None = None
    iou_max: float | None = None
    failed: str = ""
    change: str = ""
    q: str = ""
    page: int = 1
    per: int = 50
    notes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> TableQuery:
        notes: list[str] = []

        def pick(name: str, allowed: Sequence[Any], default: Any) -> Any:
            value = params.get(name, "")
            if value in ("", None):
                return default
            if value not in allowed:
                notes.append(f"ignored {name}={value!r} (one of: {', '.join(map(str, allowed))})")
                return default
            return value

        per = pick("per", [str(p) for p in PER_PAGE], str(PER_PAGE[1]))
        return cls(
            sort=pick("sort", SORT_KEYS, "index"),
            desc=params.get("desc", "") in ("1", "true", "on"),
            stop=params.get("stop", "")[:80],
            iou_min=_bound(params, "iou_min", notes),
            iou_max=_bound(params, "iou_max", notes),
            failed=pick("failed", FAILED, ""),
            change=pick("change", CHANGES, ""),
            q=params.get("q", "").strip()[:200],
            page=_page(params.get("page", "1"), notes),
            per=int(per),
            notes=tuple(notes),
        )


def _bound(params: Mapping[str, str], name: str, notes: list[str]) -> float | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        notes.append(f"ignored {name}={raw!r} (a number between 0 and 1)")
        return None
    return min(1.0, max(0.0, value))


def _page(raw: str, notes: list[str]) -> int:
    try:
        return max(1, int(raw))
    except ValueError:
        notes.append(f"ignored page={raw!r}")
        return 1


@dataclass
class TableRow:
    """A row of RUN (``a``) with the same example in RUN_B (``b``) when there is one."""

    a: Row
    b: Row | None = None

    @property
    def delta(self) -> float | None:
        return None if self.b is None else self.b.iou - self.a.iou

    @property
    def change(self) -> str:
        d = self.delta
        if d is None:
            return "only_a"
        return change_of(d)  # the default tolerance, as `bench report` and `bench cases`


@dataclass
class TablePage:
    """One page of the filtered, sorted rows."""

    rows: list[TableRow]
    matched: int
    total: int
    query: TableQuery
    pages: int
    stop_reasons: list[str]
    change_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _keep(row: TableRow, q: TableQuery, has_b: bool) -> bool:
    a = row.a
    if q.stop and a.stop_reason != q.stop:
        return False
    if q.iou_min is not None and a.iou < q.iou_min:
        return False
    if q.iou_max is not None and a.iou > q.iou_max:
        return False
    if q.failed and a.failed != (q.failed == "yes"):
        return False
    if has_b and q.change and row.change != q.change:
        return False
    if q.q:
        needle = q.q.lower()
        if needle not in a.search_text and (row.b is None or needle not in row.b.search_text):
            return False
    return True


def _sort_key(sort: str) -> Any:
    missing = float("-inf")
    keys: dict[str, Any] = {
        "index": lambda r: r.a.position,
        "iou": lambda r: r.a.iou,
        "iou_b": lambda r: r.b.iou if r.b is not None else missing,
        "delta": lambda r: r.delta if r.delta is not None else missing,
        "iterations": lambda r: r.a.iterations,
        "seconds": lambda r: r.a.seconds,
        "conf": lambda r: r.a.conf if r.a.conf is not None else missing,
        "usd": lambda r: r.a.usd,
        "stop_reason": lambda r: r.a.stop_reason,
        "example_id": lambda r: r.a.example_id,
    }
    return keys[sort]


@dataclass
class Ordered:
    """All rows the query keeps, in its order, before the page cut."""

    rows: list[TableRow]
    total: int
    query: TableQuery
    change_counts: dict[str, int]
    notes: list[str]


def ordered_rows(rows_a: Sequence[Row], rows_b: Sequence[Row] | None, query: TableQuery) -> Ordered:
    """Pair ``rows_a`` with ``rows_b`` by example id, then filter and sort them."""
    by_id = {r.example_id: r for r in rows_b} if rows_b is not None else {}
    has_b = rows_b is not None
    rows = [TableRow(a, by_id.get(a.example_id)) for a in rows_a]
    notes = list(query.notes)
    if not has_b and (query.change or query.sort in ("iou_b", "delta")):
        notes.append("improved/degraded and IoU B need a second run: refseg view RUN RUN_B")
        query = replace(query, change="", sort="index" if query.sort in ("iou_b", "delta") else query.sort)
    counts: dict[str, int] = {}
    if has_b:
        for r in rows:
            counts[r.change] = counts.get(r.change, 0) + 1
    kept = [r for r in rows if _keep(r, query, has_b)]
    # Stable sort: ties keep example order, in both directions.
    kept.sort(key=_sort_key(query.sort), reverse=query.desc)
    return Ordered(kept, len(rows), query, counts, notes)


def table_page(rows_a: Sequence[Row], rows_b: Sequence[Row] | None, query: TableQuery) -> TablePage:
    """Filter, sort and cut one page out of ``rows_a`` (paired with ``rows_b`` by example id)."""
    ordered = ordered_rows(rows_a, rows_b, query)
    query, notes = ordered.query, ordered.notes
    pages = max(1, -(-len(ordered.rows) // query.per))
    if query.page > pages:
        notes.append(f"page {query.page} is past the end; showing page {pages}")
        query = replace(query, page=pages)
    start = (query.page - 1) * query.per
    return TablePage(
        rows=ordered.rows[start : start + query.per],
        matched=len(ordered.rows),
        total=ordered.total,
        query=query,
        pages=pages,
        stop_reasons=sorted({r.stop_reason for r in rows_a}),
        change_counts=ordered.change_counts,
        notes=notes,
    )
