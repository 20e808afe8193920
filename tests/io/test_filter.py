"""OpenSim's coordinate low-pass (pad + IIR, with resampling), checked live, and the
differentiable (torch) path: gradcheck and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffbio.io import (
    Storage,
    butterworth_filtfilt,
    lowpass_filter,
    opensim_lowpass,
    opensim_pad,
    read_storage,
    write_storage,
)
from tests.conftest import opensim_data_path

IK = ("gait2392", "subject01_walk1_ik.mot")


def _osim_columns(osim, s):
    t = osim.ArrayDouble()
    s.getTimeColumn(t)
    time = np.array([t.get(i) for i in range(t.getSize())])
    n = s.getColumnLabels().getSize() - 1
    data = np.zeros((time.size, n))
    for j in range(n):
        col = osim.ArrayDouble()
        s.getDataColumn(j, col)
        data[:, j] = [col.get(i) for i in range(col.getSize())]
    return time, data


@pytest.mark.parametrize("parts", [IK, ("gait10dof18musc", "subject01_walk_IK.mot")])
def test_opensim_lowpass_matches_storage_pad_lowpassIIR(parts):
    """Measured: times identical, values within 3.4e-13 deg (|x| <= 137 deg)."""
    osim = pytest.importorskip("opensim")
    path = opensim_data_path(*parts)
    st = read_storage(path)
    s = osim.Storage(str(path))
    s.pad(s.getSize() // 2)
    s.lowpassIIR(6.0)
    t_ref, y_ref = _osim_columns(osim, s)
    t, y = opensim_lowpass(st.time, st.data, 6.0)
    assert t.shape == t_ref.shape
    np.testing.assert_array_equal(t, t_ref)
    assert np.abs(y - y_ref).max() <= 1e-12 * np.abs(y_ref).max()


def test_gait2392_ik_is_resampled():
    # Times printed with 8 decimals are not uniform: OpenSim resamples at the smallest step.
    st = read_storage(opensim_data_path(*IK))
    t, _ = opensim_lowpass(st.time, st.data, 6.0)
    dtmin = np.diff(opensim_pad(st.time, 105)).min()
    assert t.shape == (421,) and t[0] == -1.25
    np.testing.assert_allclose(np.diff(t), dtmin, rtol=1e-12)
    assert t[-1] < 5.75  # the running grid stops short of the padded end


def test_uniform_lowpass_filter_matches_opensim(tmp_path):
    osim = pytest.importorskip("opensim")
    dt = 1.0 / 64.0  # exactly uniform float steps: OpenSim does not resample
    t = np.arange(64) * dt
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=(64, 3)), axis=0)
    p = write_storage(tmp_path / "u.sto", Storage.from_arrays(t, ["a", "b", "c"], y))
    s = osim.Storage(str(p))
    s.pad(s.getSize() // 2)
    s.lowpassIIR(8.0)
    t_ref, y_ref = _osim_columns(osim, s)
    mine = lowpass_filter(y, dt, 8.0, keep_padding=True)
    np.testing.assert_array_equal(opensim_pad(t, 32), t_ref)
    np.testing.assert_allclose(mine, y_ref, rtol=0, atol=1e-12 * np.abs(y_ref).max())
    # the unpadded output is the middle of the padded one
    np.testing.assert_array_equal(lowpass_filter(y, dt, 8.0), mine[32:96])


def test_iir_gain_at_cutoff_is_half():
    # Forward-backward third-order Butterworth: |H(fc)|^2 = 1/2 per pass -> 1/2 for both.
    dt, fc = 1e-3, 20.0
    t = np.arange(20000) * dt
    y = np.sin(2 * math.pi * fc * t)
    out = lowpass_filter(y, dt, fc)
    mid = slice(5000, 15000)
    amp = np.sqrt(2 * np.mean(out[mid] ** 2))
    assert amp == pytest.approx(0.5, abs=2e-3)
    low = lowpass_filter(np.sin(2 * math.pi * 1.0 * t), dt, fc)
    np.testing.assert_allclose(low[mid], np.sin(2 * math.pi * t[mid]), atol=1e-4)


def test_butterworth_filtfilt_gain():
    dt, fc = 1e-3, 10.0
    t = np.arange(20000) * dt
    x = np.stack([np.sin(2 * math.pi * fc * t), np.sin(2 * math.pi * 0.5 * t)], axis=1)
    out = butterworth_filtfilt(x, dt, fc, order=4)
    mid = slice(5000, 15000)
    assert np.sqrt(2 * np.mean(out[mid, 0] ** 2)) == pytest.approx(0.5, abs=2e-3)
    np.testing.assert_allclose(out[mid, 1], x[mid, 1], atol=1e-6)
    with pytest.raises(ValueError, match="cutoff"):
        butterworth_filtfilt(x, dt, 600.0)


def test_torch_path_equals_numpy_and_gradcheck():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(2, 30, 3))
    ref = lowpass_filter(y, 0.01, 6.0)
    yt = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    out = lowpass_filter(yt, 0.01, 6.0)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v: lowpass_filter(v, 0.01, 6.0), (yt,))


def test_torch_gradient_vs_finite_differences():
    rng = np.random.default_rng(3)
    y = torch.tensor(rng.normal(size=(25, 2)), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(rng.normal(size=(25, 2)), dtype=torch.float64)

    def loss(v):
        return (lowpass_filter(v, 0.02, 5.0) * w).sum() + (lowpass_filter(v, 0.02, 5.0) ** 2).sum()

    (g,) = torch.autograd.grad(loss(y), y)
    eps = 1e-6
    fd = torch.zeros_like(y)
    for i in range(25):
        for j in range(2):
            e = torch.zeros_like(y)
            e[i, j] = eps
            fd[i, j] = (loss(y + e) - loss(y - e)) / (2 * eps)
    torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-8)


def test_iir_recursion_matches_scipy_lfilter():
    """OpenSim's recursion (direct form, first three samples copied) equals scipy's
    ``lfilter`` started from the state those samples imply (an independent implementation
    of the same difference equation), to round-off."""
    import scipy.signal

    from diffbio.io._filter import _iir_coefficients, _iir_pass

    x = np.random.default_rng(3).normal(size=(300, 4)).cumsum(0)
    a, b = _iir_coefficients(0.01, 6.0)
    zi = np.zeros((3, 4))
    for m in range(3):
        for k in range(m + 1, 4):
            zi[m] += (a[k] - b[k]) * x[2::-1][k - m - 1]
    ref = np.concatenate([x[:3], scipy.signal.lfilter(a, b, x[3:], axis=0, zi=zi)[0]])
    mine = _iir_pass(x, a, b)
    assert np.abs(mine - ref).max() <= 1e-12 * np.abs(ref).max()
