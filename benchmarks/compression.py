"""Size, write and decode time of a medium study's token arrays under the NetCDF-4 filters of this netCDF4 build.

Usage: ``python -m benchmarks.compression [n_tokens] [folder]`` (default 250,000 tokens in /tmp).
Results: benchmarks/figures/compression.md. Decode = reading every variable back with
netCDF4 (file in the page cache), so it measures the filter, not the disk.
"""
import os
import sys
import tempfile
import time

import netCDF4
import numpy as np

from tests.naive.inputs import sae_index

N = int(sys.argv[1]) if len(sys.argv) > 1 else 250_000
FOLDER = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="emostats-compression-")
P, K = 171, 64
rng = np.random.default_rng(0)
e = rng.standard_normal((N, P)).astype(np.float32)
x = np.empty_like(e)
x[0] = e[0]
phi = np.float32(0.9)
for t in range(1, N):
    x[t] = phi * x[t - 1] + np.float32(0.44) * e[t]
x = (x * np.float32(0.7) + np.float32(1.3)).astype(np.float32)
idx, _ = sae_index(N, K, 100_000, seed=0)
idx.sort(axis=1)
val = np.where(idx >= 0, rng.gamma(2.0, 1.0, idx.shape), 0).astype(np.float32)
arrays = {"probe_act": x, "sae_index": idx, "sae_value": val}
raw = sum(a.nbytes for a in arrays.values())
CH = 65536
variants = [("none", {}), ("zlib1", dict(compression="zlib", complevel=1, shuffle=True)),
            ("zlib4 (current)", dict(compression="zlib", complevel=4, shuffle=True)),
            ("zlib9", dict(compression="zlib", complevel=9, shuffle=True)),
            ("zlib1 no shuffle", dict(compression="zlib", complevel=1, shuffle=False)),
            ("zstd1", dict(compression="zstd", complevel=1, shuffle=True)),
            ("zstd3", dict(compression="zstd", complevel=3, shuffle=True)),
            ("blosc_lz4", dict(compression="blosc_lz4", complevel=5, blosc_shuffle=1)),
            ("blosc_zstd", dict(compression="blosc_zstd", complevel=3, blosc_shuffle=1))]
print(f"filters: {sorted(k for k in dir(netCDF4) if k.startswith('__has_') and k.endswith('_support__') and getattr(netCDF4, k))}")
print(f"raw {raw/2**20:.0f} MiB ({N} tokens x {P} probes float32, sae k={K} int32 + float32); load {os.getloadavg()[0]:.2f}")
print("| encoding | file MiB | ratio | write s | decode s | decode MB/s |")
print("|---|---:|---:|---:|---:|---:|")
for name, kw in variants:
    path = os.path.join(FOLDER, f"{name.split()[0]}.nc")
    t0 = time.perf_counter()
    with netCDF4.Dataset(path, "w") as ds:
        for dim, size in (("token", N), ("probe", P), ("slot", K)):
            ds.createDimension(dim, size)
        for vname, a in arrays.items():
            dims = ("token", "probe") if vname == "probe_act" else ("token", "slot")
            v = ds.createVariable(vname, a.dtype, dims, chunksizes=(min(CH, N), a.shape[1]), **kw)
            v[:] = a
    tw = time.perf_counter() - t0
    size = os.path.getsize(path)
    best = 1e9
    for _ in range(3):
        with open(path, "rb") as fh:  # into the page cache: decode time, not disk
            while fh.read(1 << 24):
                pass
        t0 = time.perf_counter()
        with netCDF4.Dataset(path) as ds:
            for vname, a in arrays.items():
                ds[vname].set_auto_maskandscale(False)
                out = ds[vname][:]
                assert np.array_equal(out, a)
        best = min(best, time.perf_counter() - t0)
    print(f"| {name} | {size/2**20:.1f} | {raw/size:.2f} | {tw:.2f} | {best:.3f} | {raw/best/1e6:.0f} |", flush=True)
    os.remove(path)
