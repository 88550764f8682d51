"""Search's pure parts: the literal taken from a regex for the index, globs, line matching."""

from __future__ import annotations

import re

from coolcoding.services.search import _match_file, glob_to_regex, required_literal


def test_required_literal_is_the_longest_plain_run_or_none() -> None:
    assert required_literal(r"special_token_x\d") == "special_token_x"
    assert required_literal(r"foo\w+barbaz") == "barbaz"
    assert required_literal(r"ab*") == "a"
    assert required_literal(r"alpha|beta") is None
    assert required_literal(r"\d+") is None


def test_globs_match_names_at_any_depth_and_folders_below() -> None:
    assert glob_to_regex("*.py").match("a/b/c.py")
    assert not glob_to_regex("*.py").match("a/b/c.pyc")
    assert glob_to_regex("node_modules").match("web/node_modules/x/y.js")
    assert glob_to_regex("src/**").match("src/a/b.ts")
    assert not glob_to_regex("src/**").match("lib/src.ts")
    assert glob_to_regex("*.{js,ts}").match("x.ts")


def test_match_file_counts_lines_and_groups_matches_of_a_line() -> None:
    body = "a foo\n\nfoo foo\nbar\nfoo"
    found = _match_file("f", body, re.compile("foo", re.M), 100)
    assert found is not None
    assert [(m.line, m.ranges) for m in found.matches] == [
        (1, [(2, 5)]),
        (3, [(0, 3), (4, 7)]),
        (5, [(0, 3)]),
    ]
    limited = _match_file("f", body, re.compile("foo", re.M), 2)
    assert limited is not None and len(limited.matches) == 2
    assert _match_file("f", body, re.compile("zzz"), 10) is None


def test_like_alternatives_spell_out_i_k_s_and_cover_python_case_folding() -> None:
    from coolcoding.services.search import double_pattern, like_alternatives

    assert like_alternatives("qz") is None  # nothing to spell out: the index pattern is exact
    assert like_alternatives("urn res") == ["%urn res%", "%urn re\u017f%"]
    alts = like_alternatives("Kelvin") or []
    assert len(alts) <= 8 and "%\u212aelvin%" in alts and "%kelvin%" in alts
    # Every text Python's case-insensitive match finds satisfies one of the patterns.
    for text in ("return \u017fesult", "urn RES", "\u212aelv\u0130n", "kelv\u0131n"):
        for q in ("urn res", "kelvin"):
            if re.search(re.escape(q), text, re.IGNORECASE):
                pats = like_alternatives(q) or []
                rx = [
                    re.compile(p.strip("%").replace("%", ".*"), re.IGNORECASE | re.ASCII)
                    for p in pats
                ]
                assert any(r.search(text) for r in rx), (q, text)
    assert double_pattern("%qz%") == "%qqzz%"
    assert double_pattern("%a%bc%") == "%aa%bbcc%"
