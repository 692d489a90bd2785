"""Interactive ipywidgets views for the notebooks; each takes results and never computes models."""
