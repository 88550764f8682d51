"""services/search.py finds a plain literal with ``str.find`` where that is exact: its matches
must be those of the compiled pattern (Python's ``re``, what the answer is defined by), on texts
where case folding, word characters and overlapping candidates differ."""

from __future__ import annotations

import itertools

from coolcoding.services.search import SearchQuery, SearchService, _match_file, _spans
from coolcoding.settings import Settings

TEXTS = [
    "aaa baaa aa_a a-aa aa",
    "İstanbul istanbul \u0131dle IDLE kelvin \u212aelvin K k \u017fecret secret",
    "x_response response_ responsE RESPONSE response.",
    "ab\nab ab\n\nab",
    "ééé éé é École école",
    "aaaa",
    "xa-a-a a-a-ax",  # a whole word rejected at one start, found overlapping it
    "straße STRASSE strasse",
    "",
]
LITERALS = ["aa", "a", "k", "kelvin", "secret", "s", "response", "é", "école", "ab", "İ", "i",
            "straße", "a-a", "_a"]  # fmt: skip


def test_plain_literal_spans_equal_the_regex_engines() -> None:
    svc = SearchService(None, Settings())  # type: ignore[arg-type]
    for text, lit, case, word in itertools.product(TEXTS, LITERALS, (False, True), (False, True)):
        pattern = svc.compile(SearchQuery(lit, case_sensitive=case, whole_word=word))
        want = [m.span() for m in pattern.finditer(text) if m.end() > m.start()]
        assert list(_spans(text, pattern, lit, case, word)) == want, (text, lit, case, word)


def test_lines_and_ranges_equal_the_regex_path() -> None:
    svc = SearchService(None, Settings())  # type: ignore[arg-type]
    body = "\n".join(TEXTS) + "\n" + "response " * 60 + "\nlast response"
    for lit, case, word in itertools.product(LITERALS, (False, True), (False, True)):
        pattern = svc.compile(SearchQuery(lit, case_sensitive=case, whole_word=word))
        for room in (1, 3, 100):
            fast = _match_file("f", body, pattern, room, lit, case, word)
            slow = _match_file("f", body, pattern, room)
            assert fast == slow, (lit, case, word, room)
