"""Generate the hostile corpus: one function per study, written into a folder at test time.

Every case is a :class:`Case`: the files to pass to the command line and what
each command must do. ``expect`` is one of

- ``"valid"``: ``validate``, ``info`` and ``run`` exit 0;
- ``"warn"``: the study is usable (``info`` and ``run`` exit 0) but ``validate``
  lists a warning (NaN/inf activations) and exits 2;
- ``"invalid"``: every command exits 2 with one line naming ``mentions`` (the
  group and the variable, or the file and what it is);
- ``"either"``: damaged files whose damage may or may not be noticed: exit 0
  or exit 2 with one line, never a crash.

Nothing here is committed as a binary file: :func:`write_corpus` builds it all.
"""

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["Case", "write_corpus", "base_study", "CASES"]


@dataclass
class Case:
    name: str
    files: list
    expect: str
    mentions: tuple = ()
    #: compare the run's persistence r with the base study's (same data, other storage)
    same_numbers_as_base: bool = False
    full_run: bool = False
    notes: dict = field(default_factory=dict)


def base_study(seed=1):
    """A small synthetic study with every group (about 400 tokens)."""
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=400, n_probes=3, n_features=30, k=3, hidden=6, n_offsets=11,
                               n_steer_samples=4, n_baseline=4, lags=(5,), turn_length=(20, 80), seed=seed)
    return tree


def _ds(tree, group):
    return tree[group].to_dataset(inherit=False)


def _with(tree, group, ds):
    out = tree.copy()
    out[group] = xr.DataTree(ds)
    return out


def _write(tree, path, engine="netcdf4", encoding=None, **kw):
    tree.to_netcdf(path, engine=engine, encoding=encoding, **kw)
    return path


CASES = []


def case(expect, mentions=(), **extra):
    def register(fn):
        CASES.append((fn.__name__, fn, expect, tuple(mentions), extra))
        return fn
    return register


# ----------------------------------------------------------------------------- valid studies
@case("valid", same_numbers_as_base=True, full_run=True)
def base(tree, folder):
    return [_write(tree, folder / "base.nc")]


@case("valid")
def float64_activations(tree, folder):
    ds = _ds(tree, "tokens")
    return [_write(_with(tree, "tokens", ds.assign(probe_act=ds.probe_act.astype(np.float64))), folder / "f64.nc")]


@case("valid")
def large_offset_activations(tree, folder):
    ds = _ds(tree, "tokens")
    act = ds.probe_act.astype(np.float64) + 1e4
    return [_write(_with(tree, "tokens", ds.assign(probe_act=act)), folder / "offset.nc")]


@case("valid", same_numbers_as_base=True, full_run=True)
def uint64_ids_colliding_in_float64(tree, folder):
    ds = _ds(tree, "tokens")
    conv = ds.conversation.values.astype(np.uint64)
    ids = (np.uint64(2**64 - 2**12) + conv * np.uint64(2)).astype(np.uint64)  # distinct, equal as float64
    assert np.unique(ids.astype(np.float64)).size < np.unique(ids).size
    return [_write(_with(tree, "tokens", ds.assign_coords(conversation=("token", ids))), folder / "uint64.nc")]


@case("valid", same_numbers_as_base=True)
def small_integer_coordinates(tree, folder):
    ds = _ds(tree, "tokens")
    ds = ds.assign_coords(turn=("token", ds.turn.values.astype(np.int8)),
                          position=("token", ds.position.values.astype(np.uint16)),
                          conversation=("token", ds.conversation.values.astype(np.int16)))
    return [_write(_with(tree, "tokens", ds), folder / "smallint.nc")]


@case("valid", same_numbers_as_base=True)
def sae_index_fill_value_minus_one(tree, folder):
    enc = {"/tokens": {"sae_index": {"_FillValue": np.int32(-1)}}}
    return [_write(tree, folder / "fill1.nc", encoding=enc)]


@case("valid", same_numbers_as_base=True)
def sae_index_fill_value_other(tree, folder):
    ds = _ds(tree, "tokens")
    idx = ds.sae_index.values.copy()
    idx[idx == -1] = -999
    out = _with(tree, "tokens", ds.assign(sae_index=(("token", "slot"), idx)))
    return [_write(out, folder / "fill999.nc", encoding={"/tokens": {"sae_index": {"_FillValue": np.int32(-999)}}})]


def _renamed(tree, names):
    old = [str(p) for p in _ds(tree, "tokens").probe.values]
    mapping = dict(zip(old, names))
    out = tree.copy()
    for group in ("tokens", "probes", "steering", "evaluations"):
        if group not in out.children:
            continue
        ds = _ds(out, group)
        for dim in ("probe", "emotion"):
            if dim in ds.coords:
                ds = ds.assign_coords({dim: [mapping[str(v)] for v in ds[dim].values]})
        out[group] = xr.DataTree(ds)
    return out


@case("valid", same_numbers_as_base=True)
def markup_probe_names(tree, folder):
    return [_write(_renamed(tree, ['say "hi" #1', "$x$ *bold* <b>", "@ref_`code` \\ [l](u)"]), folder / "markup.nc")]


@case("valid", same_numbers_as_base=True)
def unicode_probe_names(tree, folder):
    return [_write(_renamed(tree, ["ängstlich", "مبتهج", "😀 joy"]), folder / "unicode.nc")]


@case("warn")
def nan_and_inf_activations(tree, folder):
    ds = _ds(tree, "tokens")
    act = ds.probe_act.values.copy()
    act[3, 1], act[50, 0], act[51, 2] = np.nan, np.inf, -np.inf
    return [_write(_with(tree, "tokens", ds.assign(probe_act=(("token", "probe"), act))), folder / "nan.nc")]


@case("warn")
def all_nan_probe(tree, folder):
    ds = _ds(tree, "tokens")
    act = ds.probe_act.values.copy()
    act[:, 1] = np.nan
    return [_write(_with(tree, "tokens", ds.assign(probe_act=(("token", "probe"), act))), folder / "allnan.nc")]


@case("valid")
def constant_probe(tree, folder):
    ds = _ds(tree, "tokens")
    act = ds.probe_act.values.copy()
    act[:, 0] = 3.25
    return [_write(_with(tree, "tokens", ds.assign(probe_act=(("token", "probe"), act))), folder / "const.nc")]


@case("valid")
def tokens_only(tree, folder):
    return [_write(_tokens_only(tree), folder / "tokens_only.nc")]


def _tokens_only(tree):
    out = xr.DataTree.from_dict({"/tokens": _ds(tree, "tokens")})
    out.attrs = dict(tree.attrs)
    return out


@case("valid")
def one_probe(tree, folder):
    out = tree.copy()
    keep = str(_ds(tree, "tokens").probe.values[0])
    for group in ("tokens", "probes", "steering"):
        out[group] = xr.DataTree(_ds(tree, group).sel(probe=[keep]))
    ds = _ds(out, "steering").sel(emotion=[keep])
    out["steering"] = xr.DataTree(ds)
    out["evaluations"] = xr.DataTree(_ds(tree, "evaluations").sel(emotion=[keep]))
    return [_write(out, folder / "one_probe.nc")]


def _segments(tree, lengths):
    ds = _ds(tree, "tokens")
    n = ds.sizes["token"]
    lengths = list(lengths)
    conv, turn, pos = [], [], []
    total, s = 0, 0
    while total < n:
        length = min(lengths[s % len(lengths)], n - total)
        conv += [s // 2] * length
        turn += [s % 2] * length
        pos += list(range(length))
        total += length
        s += 1
    return _with(tree, "tokens", ds.assign_coords(conversation=("token", np.array(conv)),
                                                   turn=("token", np.array(turn)),
                                                   position=("token", np.array(pos))))


@case("valid")
def segments_shorter_than_the_lag(tree, folder):
    return [_write(_segments(tree, [1, 2, 4]), folder / "short_segments.nc")]


@case("valid")
def single_token(tree, folder):
    return [_write(_with(tree, "tokens", _ds(tree, "tokens").isel(token=slice(0, 1))), folder / "one_token.nc")]


@case("valid")
def extreme_magnitudes(tree, folder):
    ds = _ds(tree, "tokens")
    act = ds.probe_act.values.astype(np.float64)
    act[:, 0] *= 1e-300
    act[:, 1] *= 1e150
    return [_write(_with(tree, "tokens", ds.assign(probe_act=(("token", "probe"), act))), folder / "extreme.nc")]


@case("valid")
def spike_at_segment_starts(tree, folder):
    ds = _ds(tree, "tokens")
    act = ds.probe_act.values.astype(np.float64)
    act[ds.position.values == 0, :] = 1e7
    return [_write(_with(tree, "tokens", ds.assign(probe_act=(("token", "probe"), act))), folder / "spike.nc")]


@case("valid", same_numbers_as_base=True)
def tiny_chunks_uncompressed(tree, folder):
    enc = {"/tokens": {"probe_act": {"chunksizes": (1, 1), "zlib": False},
                       "sae_index": {"chunksizes": (7, 1)}}}
    return [_write(tree, folder / "tiny_chunks.nc", encoding=enc)]


@case("valid", same_numbers_as_base=True)
def contiguous_big_endian(tree, folder):
    import netCDF4

    ds = _ds(tree, "tokens")
    path = _write(_with(tree, "tokens", ds.drop_vars("probe_act")), folder / "big_endian.nc")
    with netCDF4.Dataset(path, "a") as root:  # xarray writes native order only
        group = root["tokens"]
        var = group.createVariable("probe_act", "f4", ("token", "probe"), endian="big", contiguous=True)
        var[:] = ds.probe_act.values
        var.setncattr("coordinates", "conversation position turn")
        assert var.endian() == "big"
    return [path]


@case("valid")
def packed_int16_activations(tree, folder):
    enc = {"/tokens": {"probe_act": {"dtype": "int16", "scale_factor": 1e-3, "add_offset": 0.0,
                                     "_FillValue": np.int16(-32768)}}}
    return [_write(tree, folder / "packed.nc", encoding=enc)]


@case("valid")
def odd_root_attributes(tree, folder):
    out = tree.copy()
    out.attrs.update(model=np.arange(12), layer="twenty\nthree", source=b"bytes", created=np.float32(1.5),
                     emostats_format=np.int8(1), extra=np.array([1.0, np.nan]))
    return [_write(out, folder / "odd_attrs.nc")]


@case("valid")
def text_with_odd_strings(tree, folder):
    ds = _ds(tree, "tokens")
    text = np.array(["", "\x00x", "é\n\t", "😀" * 50] * (ds.sizes["token"] // 4 + 1))[: ds.sizes["token"]]
    return [_write(_with(tree, "tokens", ds.assign_coords(text=("token", text.astype(object)))), folder / "text.nc")]


@case("valid", same_numbers_as_base=True, full_run=True)
def split_files_probes_in_other_order(tree, folder):
    ds = _ds(tree, "tokens")
    starts = np.flatnonzero(np.diff(ds.conversation.values) | np.diff(ds.turn.values)) + 1
    cut = int(starts[len(starts) // 2])  # at a segment boundary
    a = _with(tree, "tokens", ds.isel(token=slice(0, cut)))
    second = ds.isel(token=slice(cut, None))
    b = _with(tree, "tokens", second.isel(probe=[2, 0, 1]))
    return [_write(a, folder / "split_a.nc"), _write(b, folder / "split_b.nc")]


@case("valid", same_numbers_as_base=True)
def split_mid_segment_three_parts(tree, folder):
    ds = _ds(tree, "tokens")
    n = ds.sizes["token"]
    paths = []
    for i, (lo, hi) in enumerate(((0, 101), (101, 250), (250, n))):
        paths.append(_write(_with(tree, "tokens", ds.isel(token=slice(lo, hi))), folder / f"three_{i}.nc"))
    return paths


@case("valid")
def steering_one_offset(tree, folder):
    return [_write(_with(tree, "steering", _ds(tree, "steering").isel(offset=[0])), folder / "steer1.nc")]


@case("valid")
def labelled_hidden_dims(tree, folder):
    out = tree.copy()
    h = _ds(tree, "probes").sizes["hidden"]
    for group in ("features", "probes", "moments"):
        ds = _ds(tree, group).assign_coords(hidden=np.arange(h))
        if "hidden_b" in ds.dims:
            ds = ds.assign_coords(hidden_b=np.arange(h))
        out[group] = xr.DataTree(ds)
    return [_write(out, folder / "hidden_labels.nc")]


# ----------------------------------------------------------------------------- invalid studies
def _attr(tree, folder, name, **attrs):
    out = tree.copy()
    out.attrs.update(attrs)
    return [_write(out, folder / name)]


@case("invalid", ("/:", "emostats_format"))
def format_inf(tree, folder):
    return _attr(tree, folder, "fmt_inf.nc", emostats_format=np.inf)


@case("invalid", ("/:", "emostats_format"))
def format_array(tree, folder):
    return _attr(tree, folder, "fmt_array.nc", emostats_format=np.array([1, 1]))


@case("invalid", ("/:", "emostats_format"))
def format_string(tree, folder):
    return _attr(tree, folder, "fmt_str.nc", emostats_format="1")


@case("invalid", ("/:", "emostats_format"))
def format_nan(tree, folder):
    return _attr(tree, folder, "fmt_nan.nc", emostats_format=np.nan)


@case("invalid", ("/moments", "n"))
def moments_n_string(tree, folder):
    ds = _ds(tree, "moments")
    return [_write(_with(tree, "moments", ds.assign(n="many")), folder / "n_str.nc")]


@case("invalid", ("/moments", "cov", "not symmetric"))
def cov_not_symmetric(tree, folder):
    ds = _ds(tree, "moments")
    cov = ds.cov.values.copy()
    cov[0, 1] += 0.5 * abs(cov[0, 0])
    return [_write(_with(tree, "moments", ds.assign(cov=(("hidden", "hidden_b"), cov))), folder / "cov_asym.nc")]


@case("invalid", ("/moments", "cov", "positive semidefinite"))
def cov_not_psd(tree, folder):
    ds = _ds(tree, "moments")
    cov = ds.cov.values.astype(np.float64)
    w, v = np.linalg.eigh(cov)
    w[0] = -0.1 * w.sum()
    return [_write(_with(tree, "moments", ds.assign(cov=(("hidden", "hidden_b"), (v * w) @ v.T))),
                   folder / "cov_psd.nc")]


@case("invalid", ("/moments", "cov", "NaN"))
def cov_nan(tree, folder):
    ds = _ds(tree, "moments")
    cov = ds.cov.values.copy()
    cov[2, 2] = np.nan
    return [_write(_with(tree, "moments", ds.assign(cov=(("hidden", "hidden_b"), cov))), folder / "cov_nan.nc")]


@case("invalid", ("/tokens", "probe", "size 0"))
def no_probes(tree, folder):
    out = tree.copy()
    for group in ("tokens", "probes", "steering"):
        out[group] = xr.DataTree(_ds(tree, group).isel(probe=slice(0, 0)))
    out["steering"] = xr.DataTree(_ds(out, "steering").isel(emotion=slice(0, 0)))
    out["evaluations"] = xr.DataTree(_ds(tree, "evaluations").isel(emotion=slice(0, 0)))
    return [_write(out, folder / "no_probes.nc")]


@case("invalid", ("/tokens", "token", "size 0"))
def no_tokens(tree, folder):
    return [_write(_with(tree, "tokens", _ds(tree, "tokens").isel(token=slice(0, 0))), folder / "no_tokens.nc")]


@case("invalid", ("/steering", "offset", "size 0"))
def steering_zero_offsets(tree, folder):
    return [_write(_with(tree, "steering", _ds(tree, "steering").isel(offset=slice(0, 0))), folder / "steer0.nc")]


@case("invalid", ("/tokens", "probe_act", "dtype"))
def probe_act_strings(tree, folder):
    ds = _ds(tree, "tokens")
    return [_write(_with(tree, "tokens", ds.assign(probe_act=ds.probe_act.astype(str).astype(object))),
                   folder / "act_str.nc")]


@case("invalid", ("/tokens", "probe_act", "dims"))
def probe_act_three_dims(tree, folder):
    ds = _ds(tree, "tokens")
    return [_write(_with(tree, "tokens", ds.assign(probe_act=ds.probe_act.expand_dims(extra=2, axis=2))),
                   folder / "act_3d.nc")]


@case("invalid", ("/tokens", "position", "dtype"))
def position_float(tree, folder):
    ds = _ds(tree, "tokens")
    return [_write(_with(tree, "tokens", ds.assign_coords(position=("token", ds.position.values + 0.5))),
                   folder / "pos_float.nc")]


@case("invalid", ("/tokens", "sae_index", "dtype"))
def sae_index_float_nan(tree, folder):
    ds = _ds(tree, "tokens")
    idx = ds.sae_index.values.astype(np.float64)
    idx[idx < 0] = np.nan
    return [_write(_with(tree, "tokens", ds.assign(sae_index=(("token", "slot"), idx))), folder / "sae_float.nc")]


@case("invalid", ("/tokens", "sae_index", "n_features"))
def sae_index_out_of_range(tree, folder):
    ds = _ds(tree, "tokens")
    idx = ds.sae_index.values.copy()
    idx[7, 0] = 10**6
    return [_write(_with(tree, "tokens", ds.assign(sae_index=(("token", "slot"), idx))), folder / "sae_big.nc")]


@case("invalid", ("/features", "variance_explained", "dtype"))
def variance_explained_strings(tree, folder):
    ds = _ds(tree, "features")
    ve = np.array(["high"] * ds.sizes["feature"], dtype=object)
    return [_write(_with(tree, "features", ds.assign(variance_explained=("feature", ve))), folder / "ve_str.nc")]


@case("invalid", ("/probes", "probe"))
def probes_in_other_order(tree, folder):
    ds = _ds(tree, "probes")
    return [_write(_with(tree, "probes", ds.isel(probe=[1, 0, 2])), folder / "probes_order.nc")]


@case("invalid", ("/moments", "hidden", "label"))
def hidden_labels_disagree(tree, folder):
    out = tree.copy()
    h = _ds(tree, "probes").sizes["hidden"]
    out["probes"] = xr.DataTree(_ds(tree, "probes").assign_coords(hidden=np.arange(h)))
    out["moments"] = xr.DataTree(_ds(tree, "moments").assign_coords(hidden=np.arange(h)[::-1]))
    return [_write(out, folder / "hidden_disagree.nc")]


@case("invalid", ("/evaluations", "mentions"))
def mentions_not_binary(tree, folder):
    ds = _ds(tree, "evaluations")
    return [_write(_with(tree, "evaluations", ds.assign(mentions=ds.mentions + 2)), folder / "mentions3.nc")]


@case("invalid", ("/steering", "emotion"))
def steering_emotion_duplicated(tree, folder):
    ds = _ds(tree, "steering")
    names = ds.emotion.values.copy()
    names[1] = names[0]
    return [_write(_with(tree, "steering", ds.assign_coords(emotion=names)), folder / "emotion_dup.nc")]


@case("invalid", ("/tokens", "turn"))
def turn_missing(tree, folder):
    return [_write(_with(tree, "tokens", _ds(tree, "tokens").drop_vars("turn")), folder / "no_turn.nc")]


@case("invalid", ("/tokens", "segment", "not contiguous"))
def uint64_segment_split(tree, folder):
    ds = _ds(tree, "tokens")
    conv = np.full(ds.sizes["token"], 2**64 - 1, dtype=np.uint64)
    conv[100:200] = 2**64 - 2
    turn = np.zeros(ds.sizes["token"], dtype=np.int64)
    pos = np.concatenate([np.arange(100), np.arange(100), np.arange(ds.sizes["token"] - 200)])
    ds = ds.assign_coords(conversation=("token", conv), turn=("token", turn), position=("token", pos))
    return [_write(_with(tree, "tokens", ds), folder / "uint64_split.nc")]


@case("invalid", ("split_b2.nc", "probe", "labels differ"))
def split_files_different_probes(tree, folder):
    ds = _ds(tree, "tokens")
    a = _with(tree, "tokens", ds.isel(token=slice(0, 200)))
    b = _with(tree, "tokens", ds.isel(token=slice(200, None)).assign_coords(probe=["x", "y", "z"]))
    return [_write(a, folder / "split_a2.nc"), _write(b, folder / "split_b2.nc")]


@case("invalid", ("float16", "netCDF-C"))
def float16_invalid_netcdf(tree, folder):
    # h5py bundles its own HDF5: loaded beside netCDF4's in one process they crash each other,
    # so the file is made in a child process that imports only h5netcdf
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("h5netcdf") is None:
        return None  # cannot be made here; the case is left out
    source = _write(tree, folder / "f32.nc")
    code = ("import sys, warnings, numpy as np, xarray as xr\n"
            "warnings.simplefilter('ignore')\n"
            "t = xr.open_datatree(sys.argv[1], engine='h5netcdf').load()\n"
            "ds = t['tokens'].to_dataset(inherit=False)\n"
            "t['tokens'] = xr.DataTree(ds.assign(probe_act=ds.probe_act.astype(np.float16)))\n"
            "t.to_netcdf(sys.argv[2], engine='h5netcdf', invalid_netcdf=True)\n")
    subprocess.run([sys.executable, "-c", code, str(source), str(folder / "f16.nc")], check=True, timeout=120)
    source.unlink()
    return [folder / "f16.nc"]


# ----------------------------------------------------------------------------- not studies at all
@case("invalid", ("gzip",))
def gzip_file(tree, folder):
    path = _write(tree, folder / "inner.nc")
    (folder / "gz.nc").write_bytes(gzip.compress(path.read_bytes()))
    return [folder / "gz.nc"]


@case("invalid", ("NetCDF-3",))
def netcdf3_classic(tree, folder):
    path = folder / "classic.nc"
    _ds(tree, "tokens").drop_vars(["probe"]).to_netcdf(path, format="NETCDF3_CLASSIC")
    return [path]


@case("invalid", ("FIFO",))
def fifo(tree, folder):
    path = folder / "fifo.nc"
    os.mkfifo(path)
    return [path]


@case("invalid", ("folder",))
def directory(tree, folder):
    path = folder / "dir.nc"
    path.mkdir()
    return [path]


@case("invalid", ("empty",))
def empty_file(tree, folder):
    path = folder / "empty.nc"
    path.write_bytes(b"")
    return [path]


@case("invalid", ("not a NetCDF",))
def random_bytes(tree, folder):
    path = folder / "random.nc"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return [path]


@case("invalid", ("cannot be read",))
def truncated_hdf5(tree, folder):
    data = _write(tree, folder / "whole.nc").read_bytes()
    (folder / "truncated.nc").write_bytes(data[: len(data) // 2])
    return [folder / "truncated.nc"]


@case("either")
def corrupt_chunk(tree, folder):
    data = bytearray(_write(tree, folder / "whole2.nc").read_bytes())
    mid = len(data) // 2
    data[mid:mid + 2048] = np.random.default_rng(1).bytes(2048)
    (folder / "corrupt.nc").write_bytes(bytes(data))
    return [folder / "corrupt.nc"]


@case("invalid", ("results file",))
def results_file_as_study(tree, folder):
    out = xr.DataTree.from_dict({"/persistence": xr.Dataset({"r": ("probe", np.zeros(3))})})
    out.attrs = {"emostats_results": 1, "emostats_version": "0"}
    return [_write(out, folder / "results.nc")]


@case("invalid", ("no file matches",))
def glob_without_match(tree, folder):
    return [folder / "nothing-*.nc"]


def write_corpus(folder, tree=None, only=None):
    """Write every case (or those named in ``only``) into ``folder``; returns the list of :class:`Case`."""
    folder = Path(folder)
    tree = base_study() if tree is None else tree
    cases = []
    for name, fn, expect, mentions, extra in CASES:
        if only and name not in only and name != "base":
            continue
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        files = fn(tree, sub)
        if files is None:
            continue
        cases.append(Case(name, [Path(f) for f in files], expect, mentions, **extra))
    return cases
