"""Muscle curves against OpenSim 4.6's own curve objects, live, at 200 points each."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import diffbio.muscles as dm
from diffbio import ModelError

osim = pytest.importorskip("opensim")
osim.Logger.setLevelString("error")

N = 200
f64 = torch.float64


def _lin(a: float, b: float) -> torch.Tensor:
    return torch.linspace(a, b, N, dtype=f64)


def _max_err(ours: torch.Tensor, ref) -> float:
    err = float((ours - torch.as_tensor(np.asarray(ref), dtype=f64)).abs().max())
    print(f"max abs error {err:.3e}")
    return err


# --- DeGrooteFregly2016 ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def degroote():
    def make(width=1.0, passive=0.6, tendon=0.049):
        m = osim.DeGrooteFregly2016Muscle()
        m.set_active_force_width_scale(width)
        m.set_passive_fiber_strain_at_one_norm_force(passive)
        m.set_tendon_strain_at_one_norm_force(tendon)
        m.finalizeFromProperties()
        return m

    return make


@pytest.mark.parametrize("width", [1.0, 1.5])
def test_degroote_active_force_length_matches_opensim(degroote, width):
    m, x = degroote(width=width), _lin(0.2, 1.8)
    ref = [m.calcActiveForceLengthMultiplier(float(v)) for v in x]
    assert _max_err(dm.degroote_active_force_length(x, width), ref) < 1e-12


def test_degroote_force_velocity_and_inverse_match_opensim():
    v = _lin(-1.0, 1.0)
    ref = [osim.DeGrooteFregly2016Muscle.calcForceVelocityMultiplier(float(t)) for t in v]
    assert _max_err(dm.degroote_force_velocity(v), ref) < 1e-12
    fv = _lin(0.0, 1.7)
    ref = [osim.DeGrooteFregly2016Muscle.calcForceVelocityInverseCurve(float(t)) for t in fv]
    assert _max_err(dm.degroote_force_velocity_inverse(fv), ref) < 1e-12
    assert (
        float((dm.degroote_force_velocity_inverse(dm.degroote_force_velocity(v)) - v).abs().max())
        < 1e-12
    )


@pytest.mark.parametrize("strain", [0.6, 0.45])
def test_degroote_passive_force_length_matches_opensim(degroote, strain):
    m, x = degroote(passive=strain), _lin(0.2, 1.8)
    ref = [m.calcPassiveForceMultiplier(float(v)) for v in x]
    assert _max_err(dm.degroote_passive_force_length(x, strain), ref) < 1e-12


@pytest.mark.parametrize("strain", [0.049, 0.033])
def test_degroote_tendon_force_length_and_inverse_match_opensim(degroote, strain):
    m, x = degroote(tendon=strain), _lin(0.98, 1.0 + 1.3 * strain)
    ref = [m.calcTendonForceMultiplier(float(v)) for v in x]
    assert _max_err(dm.degroote_tendon_force_length(x, strain), ref) < 1e-12
    f = _lin(0.0, 1.5)
    ref = [m.calcTendonForceLengthInverseCurve(float(v)) for v in f]
    assert _max_err(dm.degroote_tendon_force_length_inverse(f, strain), ref) < 1e-12


# --- Millard2012 (quintic Bezier) -----------------------------------------------------------

RAJAGOPAL_AFL = (0.25, 0.77, 1.9, 0.75, 0.0)  # Rajagopal2016.osim's own values


@pytest.mark.parametrize("params", [None, RAJAGOPAL_AFL])
def test_millard_active_force_length_matches_opensim(params):
    ref_curve = (
        osim.ActiveForceLengthCurve() if params is None else osim.ActiveForceLengthCurve(*params)
    )
    ours = (
        dm.millard_active_force_length_curve()
        if params is None
        else dm.millard_active_force_length_curve(*params)
    )
    x = _lin(0.2, 2.1)  # includes the constant extrapolation at both ends
    ref = [ref_curve.calcValue(float(v)) for v in x]
    assert _max_err(dm.bezier_curve_value(ours, x), ref) < 1e-9


def test_millard_force_velocity_and_inverse_match_opensim():
    v = _lin(-1.2, 1.2)
    ref = [osim.ForceVelocityCurve().calcValue(float(t)) for t in v]
    assert _max_err(dm.bezier_curve_value(dm.millard_force_velocity_curve(), v), ref) < 1e-9
    custom = dict(
        concentric_slope_at_vmax=0.1,
        concentric_slope_near_vmax=0.3,
        isometric_slope=4.0,
        eccentric_slope_at_vmax=0.05,
        eccentric_slope_near_vmax=0.2,
        max_eccentric_velocity_force_multiplier=1.6,
        concentric_curviness=0.4,
        eccentric_curviness=0.7,
    )
    obj = osim.ForceVelocityCurve(*custom.values())
    ref = [obj.calcValue(float(t)) for t in v]
    assert _max_err(dm.bezier_curve_value(dm.millard_force_velocity_curve(**custom), v), ref) < 1e-9
    f = _lin(-0.1, 1.5)
    ref = [osim.ForceVelocityInverseCurve().calcValue(float(t)) for t in f]
    assert _max_err(dm.bezier_curve_value(dm.millard_force_velocity_inverse_curve(), f), ref) < 1e-9


@pytest.mark.parametrize("strains", [None, (0.0, 0.7), (0.05, 0.5)])
def test_millard_fiber_force_length_matches_opensim(strains):
    obj = osim.FiberForceLengthCurve()
    ours = dm.millard_fiber_force_length_curve()
    if strains is not None:
        obj.setCurveStrains(*strains)
        ours = dm.millard_fiber_force_length_curve(*strains)
    x = _lin(0.8, 1.9)
    ref = [obj.calcValue(float(v)) for v in x]
    assert _max_err(dm.bezier_curve_value(ours, x), ref) < 1e-9


def test_millard_fiber_force_length_optional_properties_match_opensim():
    obj = osim.FiberForceLengthCurve()
    obj.setCurveStrains(0.0, 0.6)
    obj.setOptionalProperties(0.3, 4.0, 0.6)
    ours = dm.millard_fiber_force_length_curve(0.0, 0.6, 0.3, 4.0, 0.6)
    x = _lin(0.8, 1.9)
    ref = [obj.calcValue(float(v)) for v in x]
    assert _max_err(dm.bezier_curve_value(ours, x), ref) < 1e-9


@pytest.mark.parametrize("strain", [0.049, 0.033])
def test_millard_tendon_force_length_matches_opensim(strain):
    obj = osim.TendonForceLengthCurve()
    obj.setStrainAtOneNormForce(strain)
    x = _lin(0.98, 1.0 + 1.5 * strain)
    ref = [obj.calcValue(float(v)) for v in x]
    assert (
        _max_err(dm.bezier_curve_value(dm.millard_tendon_force_length_curve(strain), x), ref) < 1e-9
    )
    obj.setOptionalProperties(40.0, 0.5, 0.3)
    ours = dm.millard_tendon_force_length_curve(strain, 40.0, 0.5, 0.3)
    ref = [obj.calcValue(float(v)) for v in x]
    assert _max_err(dm.bezier_curve_value(ours, x), ref) < 1e-9


def test_bezier_curve_per_muscle_broadcast():
    a = dm.millard_tendon_force_length_curve(0.049)
    b = dm.millard_tendon_force_length_curve(0.1)
    both = dm.BezierCurve.stack([a, b])
    x = torch.rand(3, 5, 2, dtype=f64) * 0.12 + 0.99
    y = dm.bezier_curve_value(both, x)
    assert y.shape == (3, 5, 2)
    assert torch.allclose(y[..., 0], dm.bezier_curve_value(a, x[..., 0]), atol=1e-14)
    assert torch.allclose(y[..., 1], dm.bezier_curve_value(b, x[..., 1]), atol=1e-14)


def test_millard_bad_curve_parameters_raise():
    with pytest.raises(ModelError):
        dm.millard_active_force_length_curve(0.9, 0.5)
    with pytest.raises(ModelError):
        dm.millard_tendon_force_length_curve(-0.01)
    with pytest.raises(ModelError):
        dm.millard_fiber_force_length_curve(0.0, 0.7, 0.2)  # optional ones all or none
    with pytest.raises(ModelError):
        dm.millard_force_velocity_curve(max_eccentric_velocity_force_multiplier=0.9)


# --- Thelen2003, through a one-muscle OpenSim model ------------------------------------------


@pytest.fixture(scope="module")
def thelen_model():
    f0, lopt, lts, alpha = 1000.0, 0.1, 0.2, 0.3
    model = osim.Model()
    body = osim.Body("b", 1.0, osim.Vec3(0), osim.Inertia(1))
    zero = osim.Vec3(0)
    joint = osim.SliderJoint("j", model.getGround(), zero, zero, body, zero, zero)
    model.addBody(body)
    model.addJoint(joint)
    mus = osim.Thelen2003Muscle("m", f0, lopt, lts, alpha)
    # gait2392's values, different from OpenSim's defaults
    mus.set_FmaxTendonStrain(0.033)
    mus.set_KshapeActive(0.5)
    mus.set_KshapePassive(4.0)
    mus.set_Af(0.3)
    mus.set_Flen(1.8)
    mus.addNewPathPoint("o", model.getGround(), zero)
    mus.addNewPathPoint("i", body, zero)
    model.addForce(mus)
    state = model.initSystem()
    coord = joint.getCoordinate()
    h = lopt * math.sin(alpha)

    def query(l_norm, tendon_strain, activation):
        """OpenSim's multipliers with the fiber state set directly (no equilibrium)."""
        lf = l_norm * lopt
        coord.setValue(state, math.sqrt(lf**2 - h**2) + lts * (1 + tendon_strain))
        mus.setFiberLength(state, lf)
        mus.setActivation(state, activation)
        model.realizeDynamics(state)
        return (
            mus.getActiveForceLengthMultiplier(state),
            mus.getPassiveForceMultiplier(state),
            mus.getTendonForce(state) / f0,
            mus.getNormalizedFiberVelocity(state),
            mus.getForceVelocityMultiplier(state),
        )

    return query


def test_thelen_force_length_curves_match_opensim(thelen_model):
    x = _lin(0.4, 1.8)
    ref = np.array([thelen_model(float(v), 0.02, 0.6) for v in x])
    assert _max_err(dm.thelen_active_force_length(x, 0.5), ref[:, 0]) < 1e-12
    assert _max_err(dm.thelen_passive_force_length(x, 0.6, 4.0), ref[:, 1]) < 1e-12


def test_thelen_tendon_force_length_matches_opensim(thelen_model):
    strain = _lin(-0.005, 0.05)
    ref = np.array([thelen_model(1.0, float(e), 0.6) for e in strain])
    assert _max_err(dm.thelen_tendon_force_length(1.0 + strain, 0.033), ref[:, 2]) < 1e-12


@pytest.mark.parametrize("activation", [0.05, 0.3, 1.0])
def test_thelen_force_velocity_matches_opensim(thelen_model, activation):
    """OpenSim infers (v_norm, fv) from equilibrium; sweep the tendon force across all four
    branches (shortening below fv=0, concentric, eccentric, linear extrapolation)."""
    pts = [(1.0, float(e)) for e in np.linspace(-0.004, 0.05, N // 2)]
    pts += [(float(l), -0.01) for l in np.linspace(1.05, 1.7, N // 2)]  # fv < 0: passive > tendon
    ref = np.array([thelen_model(l, e, activation) for l, e in pts])
    v, fv = torch.as_tensor(ref[:, 3]), ref[:, 4]
    assert fv.min() < 0 and fv.max() > 0.95 * 1.8  # every branch is exercised
    assert _max_err(dm.thelen_force_velocity(v, activation, 0.3, 1.8, 0.95), fv) < 1e-9
    back = dm.thelen_force_velocity_inverse(torch.as_tensor(fv), activation, 0.3, 1.8, 0.95)
    assert _max_err(back, v) < 1e-9


# --- differentiability ----------------------------------------------------------------------


def _curves_under_test():
    """(name, function, sample points away from kinks) for every curve."""
    afl, fv = dm.millard_active_force_length_curve(), dm.millard_force_velocity_curve()
    fpe, tfl = dm.millard_fiber_force_length_curve(), dm.millard_tendon_force_length_curve()
    fvi = dm.millard_force_velocity_inverse_curve()
    return [
        ("dg_afl", lambda x: dm.degroote_active_force_length(x, 1.2), (0.3, 1.7)),
        ("dg_fv", dm.degroote_force_velocity, (-0.9, 0.9)),
        ("dg_fv_inv", dm.degroote_force_velocity_inverse, (0.1, 1.5)),
        ("dg_fp", lambda x: dm.degroote_passive_force_length(x, 0.6), (0.3, 1.7)),
        ("dg_ft", lambda x: dm.degroote_tendon_force_length(x, 0.049), (0.99, 1.06)),
        ("dg_ft_inv", lambda x: dm.degroote_tendon_force_length_inverse(x, 0.049), (0.1, 1.4)),
        ("th_afl", lambda x: dm.thelen_active_force_length(x, 0.5), (0.3, 1.7)),
        ("th_fp", lambda x: dm.thelen_passive_force_length(x, 0.6, 4.0), (1.05, 1.7)),
        ("th_ft_toe", lambda x: dm.thelen_tendon_force_length(x, 0.033), (1.002, 1.018)),
        ("th_ft_lin", lambda x: dm.thelen_tendon_force_length(x, 0.033), (1.022, 1.05)),
        ("th_fv_conc", lambda v: dm.thelen_force_velocity(v, 0.5, 0.3, 1.8), (-0.6, -0.05)),
        ("th_fv_ecc", lambda v: dm.thelen_force_velocity(v, 0.5, 0.3, 1.8), (0.01, 0.1)),
        ("th_fv_inv", lambda f: dm.thelen_force_velocity_inverse(f, 0.5, 0.3, 1.8), (0.1, 1.6)),
        ("ml_afl", lambda x: dm.bezier_curve_value(afl, x), (0.5, 1.75)),
        ("ml_fv", lambda x: dm.bezier_curve_value(fv, x), (-0.95, 0.95)),
        ("ml_fv_inv", lambda x: dm.bezier_curve_value(fvi, x), (0.05, 1.35)),
        ("ml_fp", lambda x: dm.bezier_curve_value(fpe, x), (1.01, 1.65)),
        ("ml_ft", lambda x: dm.bezier_curve_value(tfl, x), (1.001, 1.06)),
    ]


@pytest.mark.parametrize(
    "name,fn,span", _curves_under_test(), ids=lambda p: p if isinstance(p, str) else ""
)
def test_curve_gradcheck_and_finite_differences(name, fn, span):
    x = (torch.rand(2, 7, dtype=f64) * (span[1] - span[0]) + span[0]).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-7, atol=1e-6)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    h = 1e-6
    with torch.no_grad():
        fd = (fn(x + h) - fn(x - h)) / (2 * h)
    assert torch.allclose(g, fd, rtol=1e-5, atol=1e-6), name


@pytest.mark.parametrize(
    "name,fn,span", _curves_under_test(), ids=lambda p: p if isinstance(p, str) else ""
)
def test_curve_float32_and_shapes(name, fn, span):
    x64 = torch.rand(3, 1, 4, dtype=f64) * (span[1] - span[0]) + span[0]
    y64, y32 = fn(x64), fn(x64.float())
    assert y32.dtype == torch.float32 and y32.shape == y64.shape == (3, 1, 4)
    assert torch.allclose(y32.double(), y64, rtol=1e-4, atol=1e-4), name


def test_bezier_second_derivative_matches_finite_differences():
    """The Newton-free evaluation carries exact second derivatives (Hessians for optimizers)."""
    curves = [
        dm.millard_active_force_length_curve(),
        dm.millard_force_velocity_curve(),
        dm.millard_tendon_force_length_curve(),
    ]
    x0 = torch.tensor([0.6, 0.95, 1.3], dtype=f64), torch.tensor([-0.5, 0.1, 0.95], dtype=f64)
    x0 = (*x0, torch.tensor([1.005, 1.02, 1.04], dtype=f64))
    for curve, x in zip(curves, x0):
        x = x.clone().requires_grad_(True)
        fn = lambda t, c=curve: dm.bezier_curve_value(c, t)  # noqa: E731
        (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
        (h2,) = torch.autograd.grad(g.sum(), x)
        h = 1e-5
        with torch.no_grad():
            fd2 = (fn(x + h) - 2 * fn(x) + fn(x - h)) / h**2
        assert torch.allclose(h2, fd2, rtol=1e-4, atol=1e-3)
        assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-4)


def test_bezier_curve_values_fused_equals_separate_and_gradcheck():
    """Curves of 5, 4 and 2 segments evaluated together (padded) as each on its own."""
    from diffbio.muscles._bezier import bezier_curve_values

    afl = dm.BezierCurve.stack(
        [
            dm.millard_active_force_length_curve(),
            dm.millard_active_force_length_curve(*RAJAGOPAL_AFL),
        ]
    )
    fv = dm.BezierCurve.stack([dm.millard_force_velocity_curve()] * 3)
    fpe = dm.BezierCurve.stack([dm.millard_fiber_force_length_curve(0.0, 0.6)])
    g = torch.Generator().manual_seed(3)
    xs = [
        torch.rand(4, 2, generator=g, dtype=f64) * 1.9 + 0.2,
        torch.rand(4, 3, generator=g, dtype=f64) * 2.4 - 1.2,
        torch.rand(4, 1, generator=g, dtype=f64) * 1.1 + 0.8,
    ]
    fused = bezier_curve_values([afl, fv, fpe], xs)
    for c, x, y in zip([afl, fv, fpe], xs, fused):
        assert y.shape == x.shape
        assert torch.allclose(y, dm.bezier_curve_value(c, x), rtol=0, atol=1e-15)
    leaves = [x.clone().requires_grad_(True) for x in xs]
    fn = lambda *a: tuple(bezier_curve_values([afl, fv, fpe], list(a)))  # noqa: E731
    assert torch.autograd.gradcheck(fn, tuple(leaves), eps=1e-7, atol=1e-6)
    grads = torch.autograd.grad(sum(y.sum() for y in fn(*leaves)), leaves)
    h = 1e-6
    for k, (c, x) in enumerate(zip([afl, fv, fpe], xs)):
        fd = (dm.bezier_curve_value(c, x + h) - dm.bezier_curve_value(c, x - h)) / (2 * h)
        assert torch.allclose(grads[k], fd, rtol=1e-5, atol=1e-6)
