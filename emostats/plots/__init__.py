"""Figures of the emostats analyses (matplotlib is imported lazily inside each function).

Each plot function takes the :class:`xarray.Dataset` that an analysis returned,
``ax=None`` (or ``fig=None`` for multi-panel figures), and returns the axes or
figure it drew on. Colours come from :data:`emostats.plots._style.PALETTE`;
:func:`apply_style` gives the A4-readable look used in ``emostats report``.

Modules: ``persistence`` (trajectories, lag profile, decay fits), ``nullmodels``
(random and variance-matched directions, emotion-space PCs), ``steering``,
``sae``, ``ratings`` and ``placebo`` (each headline number against its placebo draws).
"""

from ._style import DPI, FIGSIZE, PALETTE, apply_style, bin_colors, styled

__all__ = ["PALETTE", "FIGSIZE", "DPI", "apply_style", "styled", "bin_colors"]
