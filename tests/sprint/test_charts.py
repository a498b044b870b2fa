"""The report's charts: bars sized by their values, and every text drawn as text, never markup."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.sprint.charts import (
    STATUS_COLOURS,
    Bar,
    Budget,
    Segment,
    Span,
    bars_svg,
    stacked_bar_svg,
    timeline_svg,
)

SCRIPT = "<script>alert('&')</script>"
SVG_TAGS = {"svg", "title", "text", "rect", "line"}


class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(svg: str) -> _Parsed:
    parsed = _Parsed()
    parsed.feed(svg)
    parsed.close()
    return parsed


def bars_of(svg: str) -> list[dict[str, str | None]]:
    """The attributes of every bar (a rect of class ``bar``), in order."""
    return [a for t, a in parse(svg).tags if t == "rect" and "bar" in (a["class"] or "").split()]


def width(attrs: dict[str, str | None]) -> float:
    return float(attrs["width"] or 0)


def all_three(text: str) -> list[str]:
    """One chart of each kind, with ``text`` in every text value it takes."""
    return [
        timeline_svg([Span(f"data{text}", f"pass{text}", 1.0, f"1 s{text}")], f"1 s{text}"),
        bars_svg(
            f"chart{text}",
            f"latency{text}",
            [Bar(f"p99{text}", 61.0, f"61{text}", f"p99{text}"), Bar(text, None, text, text)],
            unit=f" ms{text}",
            budget=Budget(50.0, f"50{text}"),
        ),
        stacked_bar_svg(
            f"drill{text}",
            f"drill{text}",
            f"10 requests{text}",
            [Segment(f"answered{text}", 10.0, f"10{text}", f"#fff{text}")],
        ),
    ]


# --- escaping -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["timeline", "bars", "stacked"])
def test_a_script_or_ampersand_in_any_value_is_drawn_as_text(kind: str) -> None:
    svg = dict(zip(["timeline", "bars", "stacked"], all_three(SCRIPT), strict=True))[kind]
    assert "<script" not in svg
    assert "&lt;script&gt;alert(&#x27;&amp;&#x27;)&lt;/script&gt;" in svg
    parsed = parse(svg)
    assert {tag for tag, _ in parsed.tags} <= SVG_TAGS
    assert any(SCRIPT in text for text in parsed.text)


@given(st.text(max_size=30))
def test_no_text_value_can_open_a_tag_or_end_an_attribute(text: str) -> None:
    for svg in all_three(text):
        parsed = parse(svg)
        assert {tag for tag, _ in parsed.tags} <= SVG_TAGS
        assert parsed.tags[0][0] == "svg"
        assert svg.count("<svg") == 1


# --- the timeline -------------------------------------------------------------------------


def test_the_timeline_sizes_each_phase_by_its_share_and_colours_it_by_status() -> None:
    spans = [
        Span("data_access", "fail", 10.0, "10 s"),
        Span("model_development", "pass", 30.0, "30 s"),
        Span("integration", "odd", 60.0, "1 min 0 s"),
    ]
    svg = timeline_svg(spans, "1 min 40 s")
    first, second, third = bars_of(svg)
    assert [b["fill"] for b in (first, second, third)] == [
        STATUS_COLOURS["fail"],
        STATUS_COLOURS["pass"],
        "#9e9e9e",  # a status without a colour is grey
    ]
    assert width(second) / width(first) == pytest.approx(3.0)
    assert width(third) / width(first) == pytest.approx(6.0)
    # each phase starts where the one before it ended
    assert float(second["x"] or 0) == pytest.approx(float(first["x"] or 0) + width(first))
    assert "1 min 40 s" in parse(svg).text


def test_a_timeline_without_phases_is_an_axis_without_bars() -> None:
    svg = timeline_svg([], "0 s")
    assert svg.startswith('<svg id="chart-timeline"')
    assert bars_of(svg) == []
    assert [tag for tag, _ in parse(svg).tags].count("line") == 1


# --- bars against a budget ----------------------------------------------------------------


def test_bars_scale_with_their_values_and_the_one_over_budget_is_marked() -> None:
    svg = bars_svg(
        "chart-load",
        "latency (ms)",
        [Bar("p50", 2.0, "2", "p50"), Bar("p99", 61.0, "61", "p99")],
        unit=" ms",
        budget=Budget(50.0, "50"),
    )
    p50, p99 = bars_of(svg)
    assert width(p99) / width(p50) == pytest.approx(61.0 / 2.0, rel=0.01)
    assert "over" not in (p50["class"] or "").split()
    assert "over" in (p99["class"] or "").split()
    (budget,) = [a for t, a in parse(svg).tags if t == "line"]
    assert budget["class"] == "budget"
    assert "budget 50 ms" in parse(svg).text


def test_a_value_not_measured_is_an_empty_bar_labelled_with_its_text() -> None:
    svg = bars_svg(
        "chart-model",
        "rmse",
        [Bar("model", None, "—", "model"), Bar("baseline", 0.5, "0.5", "baseline")],
        unit="",
        budget=None,
    )
    model, baseline = bars_of(svg)
    assert (width(model), width(baseline) > 0) == (0.0, True)
    assert "—" in parse(svg).text
    assert "<line" not in svg  # no budget, no budget line


def test_no_bars_is_a_chart_with_no_bars() -> None:
    svg = bars_svg("chart-empty", "nothing", [], unit="", budget=None)
    assert svg.startswith('<svg id="chart-empty"')
    assert bars_of(svg) == []


# --- the stacked bar ----------------------------------------------------------------------


def test_segments_split_the_bar_by_their_sizes_with_a_legend() -> None:
    svg = stacked_bar_svg(
        "chart-drill",
        "fault drill requests",
        "500 requests",
        [
            Segment("answered", 18.0, "18", "#2e7d32"),
            Segment("degraded", 480.0, "480", "#f9a825"),
            Segment("errors", 2.0, "2", "#c62828"),
        ],
    )
    answered, degraded, errors = bars_of(svg)
    assert width(degraded) / width(answered) == pytest.approx(480 / 18, rel=0.01)
    assert float(errors["x"] or 0) == pytest.approx(
        float(degraded["x"] or 0) + width(degraded), abs=0.1
    )
    assert "answered 18 · degraded 480 · errors 2" in parse(svg).text


def test_segments_that_are_all_zero_draw_nothing_and_do_not_divide_by_zero() -> None:
    svg = stacked_bar_svg(
        "chart-drill", "drill", "0 requests", [Segment("errors", 0.0, "0", "red")]
    )
    assert [width(b) for b in bars_of(svg)] == [0.0]
