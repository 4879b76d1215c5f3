"""nnscale.format's text tables: the layout every CLI table and the live sweep rows share."""

from __future__ import annotations

from nnscale.format import render, text_table

ROWS = [{"net": "resnet50", "ips": "1,234", "d": "-3"}, {"net": "x", "ips": "12.5", "d": None}]
COLS = [("net", "network"), ("ips", "img/s"), ("d", "delta")]


def test_table_layout_is_plain_text():
    # two spaces between columns, a rule as wide as each column, numbers right, text left,
    # no trailing spaces and no terminal codes
    assert render(ROWS, COLS) == ("network   img/s  delta\n"
                                  "--------  -----  -----\n"
                                  "resnet50  1,234     -3\n"
                                  "x          12.5")


def test_wide_characters_take_two_cells():
    # A CJK name is two terminal cells a character: the columns after it still line up on screen.
    lines = render([{"net": "漢字", "ips": "1"}, {"net": "abcd", "ips": "22"}], COLS[:2]).splitlines()
    assert lines == ["network  img/s", "-------  -----", "漢字         1", "abcd        22"]


def test_rows_at_fixed_widths_widen_only_for_a_longer_cell():
    cols = [("a", "a"), ("b", "b")]
    right = lambda key, text: "right"  # noqa: E731
    assert text_table([{"a": "1", "b": "2"}], cols, widths=[4, 3], header=False, justify=right) \
        == "   1    2"
    assert text_table([{"a": "12345", "b": "2"}], cols, widths=[4, 3], header=False,
                      justify=right) == "12345    2"
    assert text_table([], cols, widths=[4, 3]) == "a     b\n----  ---"
