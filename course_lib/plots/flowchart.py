"""The chapter's decision flowchart as a plotly figure, with the path taken highlighted.

Nodes are layout shapes (diamonds for decisions, boxes for steps) named
``"node:<id>"`` or, on the path, ``"on-path:<id>"``; edges are arrow
annotations; each decision passed is annotated with its measured numbers
against their thresholds (green: passed, red: failed, grey: not measured).
The course's extension after the chapter's "Full" box
(``flowchart.COURSE_NODES``) is drawn with dotted outlines and says so.
"""

from __future__ import annotations

import html
import textwrap

import plotly.graph_objects as go

from course_lib.flowchart import COURSE_NODES, EDGES, NODES, FlowchartResult, node_label

# Node centres (x, y), top-down, in data coordinates.
POSITIONS = {
    "Start": (0.0, 8.0),
    "Check": (0.0, 7.0),
    "Q1": (0.0, 6.0),
    "Q2": (-2.0, 5.0),
    "FT1": (2.0, 5.0),
    "FT2": (0.0, 4.0),
    "Recheck": (1.0, 3.0),
    "Q3": (1.0, 2.0),
    "Use": (-2.0, 1.0),
    "Full": (3.0, 1.0),
    # the course's extension
    "Recheck2": (3.0, 0.0),
    "Q4": (3.0, -1.0),
    "UseFull": (1.4, -2.1),
    "NotReached": (3.5, -2.1),
}
HALF_SIZE = {"decision": (1.05, 0.5), "step": (0.85, 0.3), "outcome": (0.85, 0.3)}
# Where each decision's numbers are written: (x, y, xanchor).
ANNOTATION_AT = {
    "Q1": (1.0, 6.3, "left"),
    "Q2": (-2.0, 5.6, "center"),
    "Q3": (2.15, 2.3, "left"),
    "Q4": (1.85, -0.8, "right"),
}
COLORS = {
    "path": "#08519c",
    "path_fill": "#c6dbef",
    "off": "#bdbdbd",
    "off_fill": "#f7f7f7",
    "Use": "#c7e9c0",
    "UseFull": "#c7e9c0",
    "Full": "#fdd0a2",  # the path stops there: the full fine-tune is still to run
    "NotReached": "#fdd0a2",
    True: "#238b45",
    False: "#cb181d",
    None: "#969696",
}


def _wrap(text: str, width: int = 22) -> str:
    """Plotly text: HTML-escaped (labels hold "<"), broken into lines of ``width`` characters."""
    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width))


def _boundary(node: str, toward: tuple[float, float]) -> tuple[float, float]:
    """Point where the segment from ``node``'s centre toward ``toward`` leaves its shape."""
    (x, y), (tx, ty) = POSITIONS[node], toward
    hw, hh = HALF_SIZE[NODES[node][0]]
    dx, dy = tx - x, ty - y
    if NODES[node][0] == "decision":
        t = 1.0 / (abs(dx) / hw + abs(dy) / hh)
    else:
        t = min(hw / abs(dx) if dx else float("inf"), hh / abs(dy) if dy else float("inf"))
    return x + t * dx, y + t * dy


def _node_shape(node: str, *, on_path: bool, last: bool) -> dict:
    kind = NODES[node][0]
    (x, y), (hw, hh) = POSITIONS[node], HALF_SIZE[kind]
    fill = COLORS["path_fill"] if on_path else COLORS["off_fill"]
    if last and node in COLORS:
        fill = COLORS[node]
    line = dict(color=COLORS["path"] if on_path else COLORS["off"], width=3 if on_path else 1)
    if node in COURSE_NODES:
        line["dash"] = "dot"
    style = dict(
        name=f"{'on-path' if on_path else 'node'}:{node}", fillcolor=fill, line=line, layer="below"
    )
    if kind == "decision":
        path = f"M {x - hw},{y} L {x},{y + hh} L {x + hw},{y} L {x},{y - hh} Z"
        return dict(type="path", path=path, **style)
    return dict(type="rect", x0=x - hw, x1=x + hw, y0=y - hh, y1=y + hh, **style)


def _edge_annotations(source: str, target: str, label: str, *, on_path: bool) -> list[dict]:
    start = _boundary(source, POSITIONS[target])
    end = _boundary(target, POSITIONS[source])
    color = COLORS["path"] if on_path else COLORS["off"]
    arrow = dict(
        x=end[0],
        y=end[1],
        ax=start[0],
        ay=start[1],
        xref="x",
        yref="y",
        axref="x",
        ayref="y",
        text="",
        showarrow=True,
        arrowhead=2,
        arrowsize=1.2,
        arrowwidth=3 if on_path else 1.2,
        arrowcolor=color,
    )
    out = [arrow]
    if label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        out.append(
            dict(
                x=mx,
                y=my,
                text=f"<b>{label}</b>" if on_path else label,
                showarrow=False,
                font=dict(color=color, size=12),
                bgcolor="white",
            )
        )
    return out


def _decision_annotation(decision) -> dict:
    x, y, anchor = ANNOTATION_AT[decision.node]
    lines = [
        f"<span style='color:{COLORS[c.passed]}'>{html.escape(c.text())}</span>"
        for c in decision.criteria
    ]
    return dict(
        x=x,
        y=y,
        xanchor=anchor,
        yanchor="bottom",
        showarrow=False,
        align="left",
        text="<br>".join(lines),
        font=dict(size=11),
        bgcolor="rgba(255,255,255,0.85)",
    )


def flowchart_figure(
    result: FlowchartResult | None = None, *, thresholds=None, title: bool | str = True, **layout
) -> go.Figure:
    """The chapter's graph; with a ``FlowchartResult``, its path highlighted and numbers shown.

    ``thresholds`` (default: the result's, else the chapter's) fill in the
    decision labels. ``title``: True for the recommendation and lock state,
    a string, or False.
    """
    thresholds = thresholds or (result.thresholds if result is not None else None)
    path = set(result.path) if result is not None else set()
    edges = set(result.edges) if result is not None else set()
    last = result.path[-1] if result is not None else None
    shapes, annotations = [], []
    for node in NODES:
        shapes.append(_node_shape(node, on_path=node in path, last=node == last))
        x, y = POSITIONS[node]
        annotations.append(
            dict(
                x=x,
                y=y,
                text=_wrap(
                    node_label(node, thresholds), 18 if NODES[node][0] == "decision" else 22
                ),
                showarrow=False,
                font=dict(size=11, color="black" if node in path or not path else "#737373"),
            )
        )
    for source, target, label in EDGES:
        annotations += _edge_annotations(source, target, label, on_path=(source, target) in edges)
    if result is not None:
        annotations += [_decision_annotation(d) for d in result.decisions]
    annotations.append(
        dict(
            x=-3.1,
            y=-2.5,
            xanchor="left",
            showarrow=False,
            text="dotted: the course's extension after the chapter's graph",
            font=dict(size=10, color="#737373"),
        )
    )
    if title is True:
        title = _title(result)
    fig = go.Figure()
    fig.update_layout(
        shapes=shapes,
        annotations=annotations,
        title=title or None,
        xaxis=dict(visible=False, range=[-3.2, 4.4]),
        yaxis=dict(visible=False, range=[-2.7, 8.6], scaleanchor="x", scaleratio=1),
        template="plotly_white",
        width=780,
        height=1100,
        margin=dict(l=10, r=10, t=70, b=10),
        **layout,
    )
    return fig


def _title(result: FlowchartResult | None) -> str:
    if result is None:
        return "Zero-shot or fine-tune: the chapter's protocol"
    text = f"<b>{result.recommendation_text}</b>"
    if not result.complete:
        text += f"<br><span style='font-size:12px'>next: {html.escape(result.next_step)}</span>"
    state = result.thresholds.lock_state
    color = COLORS[True] if state == "locked" else COLORS[False]
    text += f"<br><span style='font-size:12px;color:{color}'>thresholds {state}</span>"
    return text
