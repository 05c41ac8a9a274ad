"""Figures: comparison grids (``viz.grids``) and other plots, drawn with matplotlib's object API
(no pyplot state, no display needed)."""
