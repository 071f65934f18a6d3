"""What the steps of one run share: the study, the parameters, earlier results, the seeds."""

from collections.abc import Callable
from typing import Any

import xarray as xr

from ..seeds import derive_seed

__all__ = ["Context"]


class Context:
    """The study, the parameters, earlier results and skips of one run.

    Parameters
    ----------
    study : xarray.DataTree
        The opened study.
    params : dict
        Every parameter of the run, checked (``ctx.params["lag"]``).
    seed : int
        The run's master seed.
    """

    def __init__(self, study: "xr.DataTree | None", params: "dict[str, Any]", seed: int):
        self.study = study
        self.params = params
        self.seed = int(seed)
        self.results: "dict[str, xr.Dataset]" = {}
        self.skipped: "dict[str, str]" = {}  # step -> why it was skipped
        self.progress: "Callable[[int, int], None] | None" = None  # (done, total) inside a long step

    def group(self, name: str) -> xr.Dataset:
        """A study group as a Dataset (without inherited coordinates)."""
        return self.study[name].to_dataset(inherit=False)

    def has(self, path: str) -> bool:
        """Whether the study has ``"group"`` or ``"group/variable"`` (a data variable or coordinate)."""
        group, _, var = path.strip("/").partition("/")
        if self.study is None or group not in self.study.children:
            return False
        if not var:
            return True
        ds = self.study[group]
        return var in ds.data_vars or var in ds.coords

    def step_seed(self, stream: str) -> int:
        """The seed of a stream (a random step's name): :func:`emostats.seeds.derive_seed` of the run seed."""
        return derive_seed(self.seed, stream)
