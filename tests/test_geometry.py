"""Tests of emostats.geometry: subspace fraction (against a QR brute force) and cosine."""

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emostats.errors import EmostatsError
from emostats.geometry import cosine, orthonormal_basis, subspace_fraction
from tests.conftest import ATOL_DASK, ATOL_KERNEL, RTOL_KERNEL
from tests.naive.nullmodels import subspace_fraction_qr


def test_subspace_fraction_matches_qr(rng):
    basis = rng.normal(size=(5, 20))
    vectors = rng.normal(size=(30, 20))
    got = subspace_fraction(vectors, basis)
    np.testing.assert_allclose(got.values, subspace_fraction_qr(vectors, basis), rtol=RTOL_KERNEL)
    assert got.dims == ("vector",) and got.attrs["rank"] == 5


def test_subspace_fraction_inside_and_orthogonal(rng):
    basis = rng.normal(size=(3, 10))
    inside = rng.normal(size=(4, 3)) @ basis
    q, _ = np.linalg.qr(np.concatenate([basis.T, rng.normal(size=(10, 7))], axis=1))
    outside = q[:, 3:].T  # orthogonal to the basis span
    np.testing.assert_allclose(subspace_fraction(inside, basis).values, 1.0, rtol=1e-12)
    np.testing.assert_allclose(subspace_fraction(outside, basis).values, 0.0, atol=1e-12)


def test_rank_deficient_basis_uses_its_span(rng):
    base = rng.normal(size=(3, 12))
    redundant = np.concatenate([base, base[:1] * 2.0, base[1:2] - base[2:3]])  # rank 3, 5 rows
    vectors = rng.normal(size=(8, 12))
    got = subspace_fraction(vectors, redundant)
    assert got.attrs["rank"] == 3
    np.testing.assert_allclose(got.values, subspace_fraction_qr(vectors, base), rtol=RTOL_KERNEL)
    assert orthonormal_basis(redundant, rtol=1e-30).shape[0] >= 3  # a tiny tolerance keeps rounding noise


def test_zero_vector_is_nan_and_errors(rng):
    basis = rng.normal(size=(2, 4))
    with pytest.warns(RuntimeWarning, match="subspace_fraction: 1 of 2 vectors are zero vectors"):
        got = subspace_fraction(np.array([[0.0, 0, 0, 0], [1.0, 0, 0, 0]]), basis)
    assert np.isnan(got.values[0]) and np.isfinite(got.values[1])
    with pytest.warns(RuntimeWarning, match="cosine: 1 of 2 basis vectors are zero vectors"):
        cos = cosine(np.ones((1, 4)), np.array([[0.0, 0, 0, 0], [1.0, 0, 0, 0]]))
    assert np.isnan(cos.values[0, 0]) and cos.values[0, 1] == pytest.approx(0.5)
    with pytest.raises(EmostatsError, match="hidden"):
        subspace_fraction(rng.normal(size=(2, 5)), basis)
    with pytest.raises(EmostatsError, match="all zero"):
        subspace_fraction(rng.normal(size=(2, 4)), np.zeros((2, 4)))
    with pytest.raises(EmostatsError, match="NaN"):
        subspace_fraction(rng.normal(size=(2, 4)), np.full((2, 4), np.nan))


def test_dataarray_and_dask(rng):
    dec = xr.DataArray(rng.normal(size=(40, 16)), dims=("feature", "hidden"), coords={"feature": np.arange(40) + 7})
    vec = xr.DataArray(rng.normal(size=(4, 16)), dims=("probe", "hidden"), coords={"probe": list("abcd")})
    eager = subspace_fraction(dec, vec)
    lazy = subspace_fraction(dec.chunk({"feature": 13}), vec)
    assert lazy.chunks is not None and eager.dims == ("feature",)
    np.testing.assert_allclose(lazy.compute().values, eager.values, atol=ATOL_DASK)
    assert list(eager["feature"].values) == list(range(7, 47))
    cos_eager = cosine(dec, vec)
    cos_lazy = cosine(dec.chunk({"feature": 9}), vec).compute()
    assert cos_eager.dims == ("feature", "probe") and list(cos_eager["probe"].values) == list("abcd")
    np.testing.assert_allclose(cos_lazy.values, cos_eager.values, atol=ATOL_DASK)
    # hidden first in the input is fine too
    np.testing.assert_allclose(subspace_fraction(dec.T, vec).values, eager.values, rtol=RTOL_KERNEL)
    # a dask array inside a DataArray without coords
    plain = xr.DataArray(da.from_array(dec.values, chunks=(11, 16)), dims=("feature", "hidden"))
    np.testing.assert_allclose(subspace_fraction(plain, vec).values, eager.values, atol=ATOL_DASK)


def test_cosine_direct(rng):
    v = rng.normal(size=(6, 9))
    b = rng.normal(size=(3, 9))
    want = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    got = cosine(v, b)
    assert got.dims == ("vector", "basis") and got.name == "cosine"
    np.testing.assert_allclose(got.values, want, rtol=RTOL_KERNEL, atol=ATOL_KERNEL)
    same = cosine(xr.DataArray(v, dims=("probe", "hidden")), xr.DataArray(b, dims=("probe", "hidden")))
    assert same.dims == ("probe", "basis")
    with pytest.warns(RuntimeWarning, match="zero vectors"):
        zero = cosine(np.zeros((1, 9)), b)
    assert np.isnan(zero.values).all()


@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)),
              elements=st.floats(-10, 10, allow_subnormal=False)),
       arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)),
              elements=st.floats(-10, 10, allow_subnormal=False)))
@pytest.mark.filterwarnings("ignore:subspace_fraction.*zero vectors:RuntimeWarning")
def test_fraction_properties(vectors, basis):
    if vectors.shape[1] != basis.shape[1] or np.abs(basis).max() == 0:
        return
    got = subspace_fraction(vectors, basis).values
    ok = np.linalg.norm(vectors, axis=1) > 0
    assert np.all(np.isnan(got[~ok]))
    assert np.all((got[ok] >= 0) & (got[ok] <= 1 + 1e-12))
    # the fraction is the norm of the cosines with an orthonormal basis of the span
    e = orthonormal_basis(basis)
    np.testing.assert_allclose(got[ok], np.sqrt((cosine(vectors[ok], e).values ** 2).sum(axis=1)),
                               rtol=1e-9, atol=1e-12)
