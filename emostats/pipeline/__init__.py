"""The pipeline: one step registry and one engine behind ``es.run`` and every analysis command.

- :mod:`.registry`: :class:`~.registry.Step`, :func:`~.registry.step` (the decorator a step
  module uses), :data:`~.registry.STEPS` (found automatically in :mod:`.steps`), the presets;
- :mod:`.params`: every parameter with its default, rule, help and flag;
- :mod:`.engine`: :func:`~.engine.run` (``es.run``) and :func:`~.engine.execute`;
- :mod:`.attrs`, :mod:`.inputs`, :mod:`.display`, :mod:`.context`, :mod:`.summary`: attribute
  encoding, opening and hashing the study, the progress display, what steps share, the summary table.

Importing this package loads the registry and the step declarations only (no
xarray, no kernels), so the command line can build its options from them quickly.

Examples
--------
>>> from emostats.pipeline import STEPS, PRESETS
>>> list(PRESETS)
['run', 'persistence', 'nullmodels']
>>> "summary" in STEPS
True
"""

from .params import Param
from .registry import PRESETS, STEPS, Preset, Step, all_params, load_steps, params_of, preset_steps, select, step

__all__ = ["STEPS", "PRESETS", "Step", "Preset", "Param", "step", "preset_steps", "params_of", "all_params",
           "select", "load_steps"]

load_steps()
