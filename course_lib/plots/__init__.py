"""Plot functions: each takes results and returns a plotly Figure; none computes or trains."""


def colours(n: int) -> list[str]:
    """``n`` colours of plotly's qualitative palette, cycled."""
    import plotly.colors

    palette = plotly.colors.qualitative.Plotly
    return [palette[i % len(palette)] for i in range(n)]
