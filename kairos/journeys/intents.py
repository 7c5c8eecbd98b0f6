"""Tag inbound messages with intents: keywords and phrases matched on word stems (English and Russian).

Each word of the text and of the intents is lower-cased (``ё`` read as ``е``) and reduced to its Snowball
stem, in Russian for Cyrillic words and in English otherwise, so the forms of a word match each other
("оплатить", "оплату", "оплатил"; "pay", "paying"). A keyword matches a word of the text; a phrase
matches its words in order, next to each other.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]")


@lru_cache(maxsize=2)
def _stemmer(language: str) -> Any:
    """Snowball's stemmer of a language (loaded on first use: most requests never stem a word)."""
    import snowballstemmer

    return snowballstemmer.stemmer(language)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    w = word.lower().replace("ё", "е")
    return _stemmer("russian" if _CYRILLIC.search(w) else "english").stemWord(w)


def stems(text: str) -> list[str]:
    """The text's words as stems, in order."""
    return [stem(w) for w in _WORD.findall(text or "")]


def tag(text: str, intents: Iterable[dict[str, Any]]) -> tuple[list[str], str | None]:
    """The names of the intents the text expresses (sorted) and the stage of the first of them that has one."""
    words = stems(text)
    if not words:
        return [], None
    present = set(words)
    joined = " " + " ".join(words) + " "
    names: list[str] = []
    stage = None
    for intent in sorted(intents, key=lambda i: i["name"]):
        hit = any(stem(k) in present for k in intent.get("keywords") or [] if _WORD.search(k))
        if not hit:
            hit = any((ph := " ".join(stems(p))) and f" {ph} " in joined for p in intent.get("phrases") or [])
        if hit:
            names.append(intent["name"])
            stage = stage or intent.get("stage")
    return names, stage


def enrich(event: dict[str, Any], intents: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``message_inbound`` event with ``properties.intents`` (and ``properties.stage``) added; others as they are."""
    if event.get("type") != "message_inbound" or not intents or not event.get("text"):
        return event
    names, stage = tag(event["text"], intents)
    if not names:
        return event
    props = dict(event.get("properties") or {})
    props["intents"] = names
    if stage:
        props["stage"] = stage
    return {**event, "properties": props}
