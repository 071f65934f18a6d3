"""Joining the files of a split study: by label, never by position.

The token groups (``/tokens``, ``/random``) concatenate along ``token`` in the
order the files are given. Every other dim of those groups is a label (probe
names, SAE slots, random directions): each file's labels are aligned to the
first file's by name, so two files listing the same probes in another order
join correctly, and files whose labels differ are refused with one line.
The other groups are taken from the first file; a later file that carries
one of them must describe the same labels (and, for groups small enough to
compare cheaply, the same values).
"""

import numpy as np
import xarray as xr

from .errors import StudyError

__all__ = ["join_along_token", "TOKEN_GROUPS"]

#: groups whose variables run along the ``token`` dim and concatenate across files
TOKEN_GROUPS = ("tokens", "random")
#: non-token groups of later files are compared value by value up to this many bytes
COMPARE_BYTES = 64 * 2**20


def _labels(ds, dim):
    return np.asarray(ds[dim].values) if dim in ds.variables else None


def _describe(values, limit=3):
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in list(values)[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _align(ds, first, group, path, first_path, skip=("token",)):
    """``ds`` with every labelled dim in the order of ``first`` (same label set), or a one-line error."""
    for dim, size in first.sizes.items():
        if dim in skip:
            continue
        if dim not in ds.sizes:
            raise StudyError(f"{path}: /{group} has no dim {dim}; every file of a split study must have "
                             f"the dims of the first file ({first_path})")
        ref, mine = _labels(first, dim), _labels(ds, dim)
        if (ref is None) != (mine is None):
            raise StudyError(f"{path}: /{group} coordinate {dim} is {'missing' if mine is None else 'present'} "
                             f"but {'present' if mine is None else 'missing'} in {first_path}; files of a split "
                             f"study must label {dim} alike")
        if ref is None:
            if ds.sizes[dim] != size:
                raise StudyError(f"{path}: /{group} dim {dim} has size {ds.sizes[dim]}; expected {size} as in "
                                 f"{first_path}")
            continue
        if ref.shape == mine.shape and np.array_equal(ref, mine):
            continue
        ref_s, mine_s = ref.astype(str), mine.astype(str)
        missing = ref_s[~np.isin(ref_s, mine_s)]
        extra = mine_s[~np.isin(mine_s, ref_s)]
        if missing.size or extra.size or len(np.unique(mine_s)) != mine_s.size or ref.shape != mine.shape:
            what = (f"lacks {_describe(missing)}" if missing.size else
                    f"has {_describe(extra)} not in {first_path}" if extra.size else "repeats a label")
            raise StudyError(f"{path}: /{group} {dim} labels differ from {first_path} (it {what}); every file "
                             f"of a split study must have the same {dim} labels")
        order = np.array([int(np.flatnonzero(mine_s == name)[0]) for name in ref_s])
        ds = ds.isel({dim: order})
    return ds


def _same_group(ds, first, group, path, first_path):
    ds = _align(ds, first, group, path, first_path, skip=())
    if set(ds.data_vars) != set(first.data_vars):
        raise StudyError(f"{path}: /{group} has variables {sorted(ds.data_vars)}; expected those of "
                         f"{first_path} {sorted(first.data_vars)}")
    if first.nbytes <= COMPARE_BYTES:
        for name in first.data_vars:
            if not ds[name].dims == first[name].dims or not ds[name].equals(first[name]):
                raise StudyError(f"{path}: /{group} {name} differs from {first_path}; the non-token groups "
                                 f"of a split study must be the same in every file")


def join_along_token(trees, paths):
    """One tree from the files of a split study (see the module docstring).

    Examples
    --------
    >>> import emostats as es
    >>> one = es.open_study(es.example_study())
    >>> two = join_along_token([one, one.copy()], ["a.nc", "b.nc"])
    >>> two["tokens"].sizes["token"] == 2 * one["tokens"].sizes["token"]
    True
    """
    first, first_path = trees[0], paths[0]
    for tree, path in zip(trees[1:], paths[1:]):
        for name in tree.children:
            if name in TOKEN_GROUPS and name not in first.children:
                raise StudyError(f"{path}: has group /{name} but {first_path} has not; every file of a split "
                                 f"study must have the same token groups")
    groups = {}
    for node in first.subtree:
        name = node.path.strip("/")
        ref = node.to_dataset(inherit=False)
        if name in TOKEN_GROUPS:
            parts = [ref]
            for tree, path in zip(trees[1:], paths[1:]):
                if name not in tree.children:
                    raise StudyError(f"{path}: group /{name} missing; every file of a split study must have "
                                     f"the token groups of the first file ({first_path})")
                part = tree[name].to_dataset(inherit=False)
                if "token" not in part.dims:
                    raise StudyError(f"{path}: /{name} has no token dim; expected variables along token")
                parts.append(_align(part, ref, name, path, first_path))
            try:
                groups[node.path] = xr.concat(parts, dim="token", data_vars="minimal", coords="minimal",
                                              compat="override", join="exact")
            except ValueError as exc:
                raise StudyError(f"/{name}: files of a split study do not concatenate along token "
                                 f"({str(exc).splitlines()[0]})") from None
        else:
            if name:
                for tree, path in zip(trees[1:], paths[1:]):
                    if name in tree.children:
                        _same_group(tree[name].to_dataset(inherit=False), ref, name, path, first_path)
            groups[node.path] = ref
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = dict(first.attrs)
    return tree
