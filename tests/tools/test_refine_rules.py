"""The rules refiner: synonyms to canonical words, head nouns, a sequence of distinct rewrites."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from tools.base import ToolSettings, Workspace, normalise_query
from tools.offline.attribute_rank import parse_query
from tools.offline.scenes import generate_scenes
from tools.refine import RefineQuery
from tools.refine_rules import RULES_VERSION, parse_expression, refine_with_rules
from tools.types import Image

IMAGE = Image.from_array(np.zeros((8, 8, 3), dtype=np.uint8))


def ws_for(expression: str, *history: str) -> Workspace:
    ws = Workspace(image=IMAGE, expression=expression)
    ws.history += list(history)
    return ws


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("the crimson disc near the left edge", "the red circle on the left"),
        ("scarlet round thing", "the red circle"),
        ("the azure box at the top", "the blue square at the top"),
        ("the tile that is scarlet", "the red square"),
        ("the leftmost violet starfish shape", "the purple star on the left"),
        ("the cherry-coloured five-pointed shape lower down", "the red star at the bottom"),
        ("the emerald wedge on the right-hand side", "the green triangle on the right"),
        ("the largest golden ball", "the biggest yellow circle"),
    ],
)
def test_paraphrases_become_canonical(expression: str, expected: str) -> None:
    refinement = refine_with_rules(ws_for(expression), None)
    assert refinement.query == expected and refinement.source == "rules"


def test_rationale_names_the_mapping() -> None:
    rationale = refine_with_rules(ws_for("the crimson disc near the left edge"), None).rationale
    assert "crimson -> red" in rationale and "disc -> circle" in rationale and "head=circle" in rationale


@pytest.mark.slow
def test_every_scene_expression_maps_to_its_object() -> None:
    """Paraphrases in the scenes are written independently of the refiner's vocabulary."""
    total = correct = 0
    for scene in generate_scenes(40, seed=300):
        for obj in scene.objects:
            for expression in obj.expressions:
                query = parse_query(refine_with_rules(ws_for(expression), None).query)
                total += 1
                correct += query.colors == [obj.color] and query.shapes == [obj.shape]
    assert correct / total >= 0.98


def test_head_noun_and_spatial_words_for_real_photos() -> None:
    p = parse_expression("the man in a red shirt on the left")
    assert (p.head, p.spatial, p.modifiers, p.colors) == ("man", ["left"], ["in red shirt"], [])
    assert refine_with_rules(ws_for("the man in a red shirt on the left"), None).query == (
        "the man in red shirt on the left"
    )
    assert parse_expression("left guy").head == "man"
    assert parse_expression("the ball player").head == "player"
    p = parse_expression("the big dog in the top left corner")
    assert (p.head, p.sizes, p.spatial) == ("dog", ["biggest"], ["top", "left"])
    assert parse_expression("woman holding an umbrella").modifiers == ["holding umbrella"]


def test_rewrites_follow_a_fixed_order_of_untried_templates() -> None:
    expression = "the crimson disc near the left edge"
    ws = ws_for(expression)
    queries = []
    for _ in range(3):
        refinement = refine_with_rules(ws, None)
        queries.append(refinement.query)
        ws.history.append(refinement.query)
    assert queries == ["the red circle on the left", "the red circle", "a photo of a red circle"]
    # Same state, same answer.
    assert refine_with_rules(ws_for(expression, *queries[:1]), None).query == queries[1]


def rewrite_until_exhausted(expression: str, limit: int = 12) -> tuple[list[str], str]:
    """Apply the refiner's rewrites as the loop does until it has nothing new."""
    ws = ws_for(expression)
    for _ in range(limit):
        refinement = refine_with_rules(ws, None)
        if not ws.set_query(refinement.query):
            return ws.history, refinement.rationale
    raise AssertionError(f"no end after {limit} rewrites: {ws.history}")


@pytest.mark.parametrize(
    "expression",
    ["the red square", "the crimson disc near the left edge", "the big man in a red shirt on the left", "it"],
)
def test_rewrites_are_distinct_and_run_out(expression: str) -> None:
    history, rationale = rewrite_until_exhausted(expression)
    normalised = [normalise_query(q) for q in history]
    assert len(set(normalised)) == len(normalised)
    assert "already tried" in rationale or "no known words" in rationale


def test_the_old_cycle_ends_instead() -> None:
    # It used to go "the red square" -> "a photo of a red square" -> "the red square" -> ...
    history, rationale = rewrite_until_exhausted("the red square")
    assert history == ["the red square", "a photo of a red square"]
    assert rationale == "rules: every rewrite was already tried"
    spatial, _ = rewrite_until_exhausted("the big man in a red shirt on the left")
    assert spatial[1:] == [
        "the biggest man in red shirt on the left",
        "the biggest man on the left",
        "the man on the left",
        "the man",
        "a photo of a man",
        "a photo of a man on the left",
    ]


def test_already_canonical_expression_still_moves_on() -> None:
    # Iteration 1 would repeat the expression: the next template is used instead.
    assert refine_with_rules(ws_for("the red circle on the left"), None).query == "the red circle"


def test_hint_words_win_and_are_kept() -> None:
    hint = "it is near the top edge"
    first = refine_with_rules(ws_for("the crimson disc on the left"), hint)
    assert first.query == "the red circle at the top"
    ws = ws_for("the crimson disc", "the red circle")
    assert refine_with_rules(ws, hint).query == "the red circle at the top"
    ws = ws_for("the crimson disc", "the red circle", "the red circle at the top")
    assert refine_with_rules(ws, hint).query == "a photo of a red circle at the top"
    assert refine_with_rules(ws_for("it"), "the blue one").query == "the blue object"


def test_nothing_known_leaves_the_expression() -> None:
    refinement = refine_with_rules(ws_for("it"), None)
    assert refinement.query == "it" and "no known words" in refinement.rationale


def test_refine_query_tool_uses_rules_by_default() -> None:
    tool = RefineQuery(ToolSettings())
    assert tool.fingerprint() == f"rules:{RULES_VERSION}"
    ws = ws_for("the azure box at the top")

    async def go():
        return await tool(ws, tool.Params())

    out = anyio.run(go)
    tool.apply(ws, out)
    assert ws.query == "the blue square at the top"
    assert ws.history == ["the azure box at the top", "the blue square at the top"]
