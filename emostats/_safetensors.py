"""Read safetensors files without torch or the safetensors package: SAELens' ``sparsity.safetensors``.

The format (https://huggingface.co/docs/safetensors): 8 bytes little-endian
header length ``N``, ``N`` bytes of JSON naming each tensor's ``dtype``,
``shape`` and ``data_offsets`` (from the end of the header), then the data,
little-endian and C-ordered.
"""

import json
import struct
from pathlib import Path

import numpy as np

from .errors import StudyError

__all__ = ["read_safetensors", "read_sparsity", "SPARSITY_FILE"]

#: SAELens' file of log10 feature firing frequencies, beside cfg.json and sae_weights.safetensors
SPARSITY_FILE = "sparsity.safetensors"

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """All tensors of a safetensors file as NumPy arrays (bfloat16 widened to float32).

    Examples
    --------
    >>> import json, struct, tempfile, pathlib
    >>> header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.safetensors"
    >>> _ = p.write_bytes(struct.pack("<Q", len(header)) + header + np.array([1, 2], "<f4").tobytes())
    >>> read_safetensors(p)["x"].tolist()
    [1.0, 2.0]
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
    except (OSError, struct.error, ValueError) as exc:
        raise StudyError(f"{path}: not a readable safetensors file ({exc})") from None
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            bits = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif info["dtype"] in _DTYPES:
            arr = np.frombuffer(data[begin:end], dtype=_DTYPES[info["dtype"]])
        else:
            raise StudyError(f"{path}: tensor {name} has dtype {info['dtype']}, which emostats does not read")
        if arr.size != int(np.prod(shape)):
            raise StudyError(f"{path}: tensor {name} holds {arr.size} values, its shape {list(shape)} needs "
                             f"{int(np.prod(shape))}")
        out[name] = arr.reshape(shape).astype(arr.dtype.newbyteorder("="))
    return out


def read_sparsity(path, feature=None):
    """SAELens' log10 feature firing frequency (``sparsity.safetensors``) as a DataArray over ``feature``.

    Parameters
    ----------
    path : str or Path
        The file, or the SAELens SAE folder that holds it.
    feature : array_like, optional
        Feature ids for the coordinate (default 0..d_sae-1).

    Returns
    -------
    xarray.DataArray
        ``log_feature_sparsity(feature)``: ``log10(firing frequency + 1e-10)``
        over the SAE's training tokens (-10 = never fired); compare with
        :func:`emostats.feature_density`'s ``log_feature_sparsity`` on a study.

    Examples
    --------
    >>> import json, struct, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())  # a SAELens SAE folder with 3 features
    >>> header = json.dumps({"sparsity": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}).encode()
    >>> values = np.array([-1.5, -3.0, -10.0], "<f4").tobytes()
    >>> _ = (folder / "sparsity.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + values)
    >>> read_sparsity(folder).values.tolist()
    [-1.5, -3.0, -10.0]
    """
    import xarray as xr

    path = Path(path)
    if path.is_dir():
        path = path / SPARSITY_FILE
    if not path.exists():
        raise StudyError(f"{path}: no such file; SAELens writes {SPARSITY_FILE} beside cfg.json")
    tensors = read_safetensors(path)
    if "sparsity" not in tensors or tensors["sparsity"].ndim != 1:
        raise StudyError(f"{path}: expected a 1-D tensor 'sparsity' (d_sae,), found {sorted(tensors)}")
    values = tensors["sparsity"].astype(np.float64)
    ids = np.arange(values.size) if feature is None else np.asarray(feature)
    if ids.shape != values.shape:
        raise StudyError(f"{path}: {values.size} sparsity values for {ids.size} features")
    return xr.DataArray(values, dims="feature", coords={"feature": ids}, name="log_feature_sparsity",
                        attrs={"long_name": "log10 firing frequency of the feature over the SAE's training "
                                            "tokens (SAELens sparsity.safetensors)", "units": "1",
                               "source_file": path.name})
