"""The examples table: query parsing, filters, search, sort, paging and the comparison with RUN_B."""

from __future__ import annotations

from bench.records import SampleRecord
from bench.viewer.runs import Row
from bench.viewer.table import TableQuery, ordered_rows, table_page


def _row(i: int, iou: float, stop: str = "guard", queries: tuple[str, ...] = (), failed: bool = False) -> Row:
    return Row.of(
        SampleRecord.model_validate(
            {
                "index": i,
                "example_id": f"ex{i}",
                "image_id": f"img{i}",
                "sentence": f"sentence {i}",
                "iou": iou,
                "stop_reason": stop,
                "failed": failed,
                "queries": [f"sentence {i}", *queries],
                "costs": {"vlm": {"usd": 0.001 * i}, "clip": {"usd": 0.0}},
            }
        )
    )


ROWS = [
    _row(0, 0.9),
    _row(1, 0.2, "max_iter", ("the red mug",)),
    _row(2, 0.5),
    _row(3, 0.0, "error", failed=True),
    _row(4, 0.5, "fallback"),
]


def test_parse_keeps_good_values_and_reports_the_rest() -> None:
    q = TableQuery.parse(
        {"sort": "iou", "desc": "1", "iou_min": "-3", "iou_max": "x", "per": "7", "page": "z"}
    )
    assert (
        q.sort == "iou" and q.desc and q.iou_min == 0.0 and q.iou_max is None and q.per == 50 and q.page == 1
    )
    assert len(q.notes) == 3 and any("iou_max" in n for n in q.notes) and any("per" in n for n in q.notes)
    assert TableQuery.parse({"sort": "__class__"}).sort == "index"


def test_filters_search_and_stable_sort() -> None:
    def ids(**params: str) -> list[str]:
        return [r.a.example_id for r in ordered_rows(ROWS, None, TableQuery.parse(params)).rows]

    assert ids(stop="max_iter") == ["ex1"]
    assert ids(iou_min="0.4", iou_max="0.6") == ["ex2", "ex4"]
    assert ids(failed="yes") == ["ex3"] and "ex3" not in ids(failed="no")
    assert ids(q="RED MUG") == ["ex1"]  # a refined query, not the expression
    assert ids(sort="iou") == ["ex3", "ex1", "ex2", "ex4", "ex0"]  # ties keep example order
    assert ids(sort="iou", desc="1") == ["ex0", "ex2", "ex4", "ex1", "ex3"]
    assert ids(sort="usd", desc="1")[0] == "ex4"


def test_pages_and_a_page_past_the_end() -> None:
    many = [_row(i, i / 100) for i in range(60)]
    page = table_page(many, None, TableQuery.parse({"per": "25", "page": "3"}))
    assert [r.a.position for r in page.rows] == list(range(50, 60)) and page.pages == 3 and page.matched == 60
    late = table_page(many, None, TableQuery.parse({"per": "25", "page": "9"}))
    assert late.query.page == 3 and any("past the end" in n for n in late.notes)


def test_improved_and_degraded_against_run_b() -> None:
    b = [_row(0, 0.9), _row(1, 0.8), _row(2, 0.1), _row(3, 0.005)]  # ex4 missing in B
    page = table_page(ROWS, b, TableQuery.parse({}))
    assert page.change_counts == {"unchanged": 2, "improved": 1, "degraded": 1, "only_a": 1}
    improved = ordered_rows(ROWS, b, TableQuery.parse({"change": "improved"})).rows
    assert [(r.a.example_id, round(r.delta or 0, 3)) for r in improved] == [("ex1", 0.6)]
    by_delta = ordered_rows(ROWS, b, TableQuery.parse({"sort": "delta"})).rows
    assert by_delta[0].a.example_id == "ex4" and by_delta[1].a.example_id == "ex2"  # missing B sorts first
    alone = table_page(ROWS, None, TableQuery.parse({"change": "improved", "sort": "delta"}))
    assert alone.matched == 5 and alone.query.sort == "index" and any("RUN_B" in n for n in alone.notes)
