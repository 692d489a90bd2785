"""Plot functions: each takes results and returns a plotly Figure; none computes or trains."""
