"""The no-VLM refiner: rewrite a referring expression with rules.

It parses the ORIGINAL expression (``ws.expression``) into a head noun, colour words,
size words, spatial words and trailing modifiers ("in a red shirt"), maps synonyms and
paraphrases onto a small canonical vocabulary ("crimson" -> red, "disc" -> circle, "near
the left edge" -> left, "guy" -> man), and offers a fixed sequence of distinct rewrites, so a
loop that is still unsure after one rewrite tries the next:

1. canonical: ``the <size> <colour> <head> <modifiers> <position>``;
2. ever simpler: the least informative words dropped (modifiers and unknown adjectives
   first, then size, then position);
3. prompt style: ``a photo of a <colour> <head>`` (then with the position).

A hint's words ("it is near the top edge") win over the expression's and are never dropped.

The refiner returns the first rewrite not tried yet (the workspace's history, compared
case-, space- and punctuation-blind); when none is left it returns the current query, which
the loop reads as "nothing new". The vocabulary is generic (people, animals, colours,
positions), so it also helps CLIP on real photos. Deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.base import Workspace, normalise_query
from tools.types import Refinement

RULES_VERSION = "2"


def _phrases(table: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """``{"red": "crimson, scarlet"}`` -> ``{"red": ("crimson", "scarlet")}``."""
    return {k: tuple(p.strip() for p in v.split(",") if p.strip()) for k, v in table.items()}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_COLORS = _phrases(
    {
        "red": "crimson, scarlet, ruby, cherry, vermilion, maroon, burgundy, reddish, rust",
        "green": "emerald, jade, lime, olive, leafy, greenish, mint, forest",
        "blue": "azure, navy, cobalt, sapphire, bluish, blueish, turquoise, teal, indigo",
        "yellow": "golden, gold, lemon, canary, mustard, yellowish, blond, blonde",
        "orange": "tangerine, amber, pumpkin, apricot, peach, orangey, orangish, copper",
        "purple": "violet, lilac, plum, mauve, lavender, purplish, magenta",
        "pink": "rose, rosy, salmon, fuchsia, pinkish",
        "brown": "tan, chocolate, tawny, chestnut, bronze, brownish, beige, khaki",
        "black": "ebony, jet, blackish",
        "white": "ivory, snowy, cream, whitish",
        "gray": "grey, silver, ash, charcoal, greyish, grayish",
    }
)
# Head nouns: canonical word -> synonyms (single words or phrases).
_HEADS = _phrases(
    {
        "circle": "disc, disk, ball, dot, sphere, orb, round thing, round shape, round one, "
        "round object, circular shape, circular thing",
        "square": "box, block, tile, cube, square shape, squarish shape, squared shape",
        "triangle": "wedge, pyramid, three sided shape, triangular shape, triangular thing",
        "star": "five pointed shape, five pointed star, starfish shape, spiky shape, star shape, "
        "pointy shape, starfish, asterisk, pentagram",
        "man": "guy, dude, gentleman, gent, fellow, bloke, male",
        "woman": "lady, gal, female, madam",
        "child": "kid, toddler, youngster, infant, baby",
        "person": "human, individual, someone, somebody",
        "dog": "puppy, pup, doggy, doggie, hound",
        "cat": "kitty, kitten",
        "car": "automobile, vehicle, sedan",
        "bicycle": "bike, cycle",
        "couch": "sofa, settee",
        "television": "tv, telly",
    }
)
_SPATIAL = _phrases(
    {
        "left": "left, leftmost, left most, far left, left hand side, left side, left edge, to the left, "
        "furthest to the left, farthest left, westmost",
        "right": "right, rightmost, right most, far right, right hand side, right side, right edge, "
        "to the right, furthest to the right, farthest right, eastmost",
        "top": "top, topmost, top most, uppermost, upper, highest, higher up, up top, top edge, top side",
        "bottom": "bottom, bottommost, bottom most, lowest, lower, lower down, bottom edge, bottom side",
        "middle": "middle, center, centre, central, centered, centred, midst",
        "front": "front, foreground, closest, nearest, closest to the camera, nearest to us",
        "back": "back, background, farthest, furthest, far away, in the distance",
    }
)
_SIZES = _phrases(
    {
        "biggest": "biggest, largest, bigger, larger, big, large, huge, giant, tallest",
        "smallest": "smallest, smaller, small, tiny, little, shortest, littlest",
    }
)
_SPATIAL_PHRASE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "middle": "in the middle",
    "front": "in front",
    "back": "in the back",
}
# Words that carry nothing for a ranker ("one", "thing", "corner"): dropped, never the head.
_FILLER = _words(
    """the a an this that these those its it is are was be one ones thing things object objects item
    shape shapes coloured colored colour color looking kind sort some very quite just please near edge
    hand side of and there here corner part area region image picture photo frame"""
)
# Words that start a modifier phrase after the head noun phrase.
_PREPOSITIONS = _words(
    """in with wearing holding on at by next beside behind under over above below carrying riding
    sitting standing who which that whose near to from without between"""
)
_RELATIVE = _words("that which who")


def _lexicon() -> dict[tuple[str, ...], tuple[str, str]]:
    """Phrase (tuple of tokens) -> (kind, canonical word)."""
    table: dict[tuple[str, ...], tuple[str, str]] = {}
    for kind, groups in (("color", _COLORS), ("head", _HEADS), ("spatial", _SPATIAL), ("size", _SIZES)):
        for canonical, synonyms in groups.items():
            for phrase in (canonical, *synonyms):
                table.setdefault(tuple(phrase.split()), (kind, canonical))
    # "on the left", "at the top", "near the left edge": the preposition belongs to the position.
    for canonical, synonyms in _SPATIAL.items():
        for phrase in (canonical, *synonyms):
            for lead in (
                "on the",
                "at the",
                "in the",
                "near the",
                "toward the",
                "towards the",
                "to the",
                "on",
                "at",
                "in",
                "near",
            ):
                table.setdefault((*lead.split(), *phrase.split()), ("spatial", canonical))
    return table


_LEXICON = _lexicon()
_MAX_PHRASE = max(len(k) for k in _LEXICON)


@dataclass
class ParsedExpression:
    """What the rules found in an expression.

    Attributes:
        head: canonical head noun ("circle", "man") or the expression's own noun; ``None``
            when there is none ("the red one").
        colors: canonical colours of the head noun phrase.
        sizes: canonical size words ("biggest", "smallest").
        spatial: canonical spatial words ("left", "top", ...), in order of appearance.
        adjectives: other words of the head noun phrase ("tall", "striped").
        modifiers: trailing phrases with synonyms mapped ("in red shirt").
        mapped: ``(surface, canonical)`` pairs of every synonym that was replaced.
    """

    head: str | None = None
    colors: list[str] = field(default_factory=list)
    sizes: list[str] = field(default_factory=list)
    spatial: list[str] = field(default_factory=list)
    adjectives: list[str] = field(default_factory=list)
    modifiers: list[str] = field(default_factory=list)
    mapped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.head or self.colors or self.spatial or self.sizes)


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("-", " "))


def _add(items: list[str], word: str) -> None:
    if word not in items:
        items.append(word)


def parse_expression(text: str) -> ParsedExpression:
    """Parse a referring expression into canonical parts (see :class:`ParsedExpression`)."""
    tokens = _tokens(text)
    items: list[tuple[str, str, str]] = []  # (kind, canonical, surface)
    i = 0
    while i < len(tokens):
        for n in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            hit = _LEXICON.get(tuple(tokens[i : i + n]))
            if hit is not None:
                items.append((hit[0], hit[1], " ".join(tokens[i : i + n])))
                i += n
                break
        else:
            items.append(("word", tokens[i], tokens[i]))
            i += 1
    out = ParsedExpression()
    for kind, canonical, surface in items:
        if kind != "word" and surface != canonical and surface.split()[-1] != canonical:
            out.mapped.append((surface, canonical))
    chunks: list[list[tuple[str, str, str]]] = [[]]
    for item in items:
        if item[0] == "word" and item[1] in _PREPOSITIONS and chunks[0]:
            chunks.append([])
        chunks[-1].append(item)
    nouns: list[tuple[str, str]] = []  # (canonical, surface) of head candidates, in order
    for kind, canonical, surface in chunks[0]:
        if kind == "color":
            _add(out.colors, canonical)
        elif kind == "size":
            _add(out.sizes, canonical)
        elif kind == "spatial":
            _add(out.spatial, canonical)
        elif kind == "head" or canonical not in _FILLER:
            nouns.append((canonical, surface))
    if nouns:
        # The last noun of the noun phrase is its head ("ball player" -> player); the
        # others are adjectives.
        out.head = nouns[-1][0]
        out.adjectives = [s for c, s in nouns[:-1] if c != out.head]
    for chunk in chunks[1:]:
        _modifier(chunk, out)
    return out


def _modifier(chunk: list[tuple[str, str, str]], out: ParsedExpression) -> None:
    """Fold one trailing phrase into ``out``: positions and sizes are global; a short
    relative clause ("that is scarlet", "that is grass-green") describes the head itself;
    anything else is kept as a modifier ("in red shirt")."""
    words: list[str] = []
    colors: list[str] = []
    content: list[str] = []
    for kind, canonical, surface in chunk:
        if kind == "spatial":
            _add(out.spatial, canonical)
        elif kind == "size":
            _add(out.sizes, canonical)
        elif kind == "color":
            colors.append(canonical)
            words.append(canonical)
        elif kind == "head" and out.head is None:
            out.head = canonical
        elif kind == "head" or canonical not in _FILLER:
            words.append(canonical)
            if canonical not in _PREPOSITIONS:
                content.append(surface)
    if chunk[0][1] in _RELATIVE and colors and len(content) <= 1:
        for c in colors:
            _add(out.colors, c)
        out.adjectives += content
    elif content or colors:
        out.modifiers.append(" ".join(words))


def _text(
    parsed: ParsedExpression,
    *,
    modifiers: bool = True,
    adjectives: bool = True,
    sizes: bool = True,
    spatial: bool = True,
) -> str:
    words = ["the"]
    if sizes:
        words += parsed.sizes
    if adjectives:
        words += parsed.adjectives
    words += parsed.colors
    words.append(parsed.head or "object")
    if modifiers:
        words += parsed.modifiers
    if spatial and parsed.spatial:
        if len(parsed.spatial) == 1:
            words.append(_SPATIAL_PHRASE[parsed.spatial[0]])
        else:  # "at the top left"
            words += ["at the", *parsed.spatial]
    return " ".join(words)


def _merge(parsed: ParsedExpression, hint: str | None) -> tuple[ParsedExpression, set[str]]:
    """The hint's words win over the expression's; returns the fields the hint set."""
    if not hint:
        return parsed, set()
    extra = parse_expression(hint)
    fixed = {name for name in ("colors", "sizes", "spatial") if getattr(extra, name)}
    merged = ParsedExpression(
        head=parsed.head or extra.head,
        colors=extra.colors or parsed.colors,
        sizes=extra.sizes or parsed.sizes,
        spatial=extra.spatial or parsed.spatial,
        adjectives=parsed.adjectives,
        modifiers=parsed.modifiers,
        mapped=parsed.mapped + extra.mapped,
    )
    return merged, fixed


def _simplified(parsed: ParsedExpression, fixed: set[str]) -> list[tuple[str, str]]:
    """Ever shorter rewrites: drop modifiers and unknown adjectives, then size words, then
    spatial words; never the words a hint gave."""
    out: list[tuple[str, str]] = []
    keep = {"modifiers": True, "adjectives": True, "sizes": True, "spatial": True}
    steps = (
        (
            ("modifiers", "adjectives"),
            bool(parsed.modifiers or parsed.adjectives),
            "modifiers and unknown adjectives",
        ),
        (("sizes",), bool(parsed.sizes) and "sizes" not in fixed, "size words"),
        (("spatial",), bool(parsed.spatial) and "spatial" not in fixed, "spatial words"),
    )
    dropped: list[str] = []
    for names, applies, what in steps:
        if applies:
            keep.update(dict.fromkeys(names, False))
            dropped.append(what)
            out.append((_text(parsed, **keep), "dropped " + ", ".join(dropped)))
    return out


def _prompt(parsed: ParsedExpression, fixed: set[str]) -> str:
    noun = " ".join([*parsed.colors, parsed.head or "object"])
    article = "an" if noun[:1] in "aeiou" else "a"
    where = f" {_SPATIAL_PHRASE[parsed.spatial[0]]}" if "spatial" in fixed and parsed.spatial else ""
    return f"a photo of {article} {noun}{where}"


def rewrites(parsed: ParsedExpression, fixed: set[str]) -> list[tuple[str, str]]:
    """Every rewrite the rules offer, in the order they are tried, without repeats:
    ``(query, how)``."""
    prompt = _prompt(parsed, fixed)
    candidates = [(_text(parsed), "canonical"), *_simplified(parsed, fixed), (prompt, "prompt template")]
    if parsed.spatial and "spatial" not in fixed:
        candidates.append((f"{prompt} {_SPATIAL_PHRASE[parsed.spatial[0]]}", "prompt template with position"))
    seen: set[str] = set()
    out = []
    for query, how in candidates:
        key = normalise_query(query)
        if key not in seen:
            seen.add(key)
            out.append((query, how))
    return out


def refine_with_rules(ws: Workspace, hint: str | None = None) -> Refinement:
    """The first rewrite of ``ws.expression`` not tried yet (see :func:`rewrites`).

    Args:
        ws: the episode's workspace; ``ws.history`` holds the queries already tried.
        hint: optional guidance ("it is on the left"); its words win over the expression's.

    Returns:
        A :class:`Refinement` with ``source="rules"``. When nothing in the expression is
        recognised, or every rewrite was tried, the query is the current one (nothing new:
        the loop then stops with ``refiner_exhausted``).
    """
    parsed, fixed = _merge(parse_expression(ws.expression), hint)
    if parsed.empty:
        return Refinement(query=ws.query, rationale="rules: no known words to rewrite", source="rules")
    fresh = [(q, h) for q, h in rewrites(parsed, fixed) if not ws.tried(q)]
    if not fresh:
        return Refinement(query=ws.query, rationale="rules: every rewrite was already tried", source="rules")
    query, how = fresh[0]
    mapping = "; ".join(f"{s} -> {c}" for s, c in parsed.mapped) or "none"
    rationale = (
        f"rules ({how}): head={parsed.head or '-'}, colours={','.join(parsed.colors) or '-'}, "
        f"spatial={','.join(parsed.spatial) or '-'}; synonyms mapped: {mapping}"
    )
    return Refinement(query=query, rationale=rationale, source="rules")
