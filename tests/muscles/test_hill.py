"""Muscle parameters from .osim, rigid-tendon force and tendon equilibrium, against OpenSim."""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import diffbio.muscles as dm
from diffbio import FileFormatError, ModelError, ShapeError
from tests.conftest import opensim_data_path

osim = pytest.importorskip("opensim")
osim.Logger.setLevelString("error")
f64 = torch.float64


def _params(curves: dm.MuscleCurves, m: int = 3) -> dm.MuscleParameters:
    return dm.MuscleParameters(
        max_isometric_force=torch.linspace(500.0, 1500.0, m, dtype=f64),
        optimal_fiber_length=torch.linspace(0.08, 0.12, m, dtype=f64),
        tendon_slack_length=torch.linspace(0.15, 0.3, m, dtype=f64),
        pennation_angle_at_optimal=torch.linspace(0.0, 0.3, m, dtype=f64),
        max_contraction_velocity=torch.full((m,), 10.0, dtype=f64),
        curves=curves,
        fiber_damping=torch.full((m,), 0.05, dtype=f64),
    )


ALL_CURVES = list(dm.MuscleCurves)


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder,file,cls,curves",
    [
        ("gait2392", "subject01_simbody.osim", osim.Thelen2003Muscle, dm.MuscleCurves.THELEN_2003),
        (
            "gait10dof18musc",
            "subject01.osim",
            osim.Millard2012EquilibriumMuscle,
            dm.MuscleCurves.MILLARD_2012,
        ),
    ],
)
def test_parameters_from_osim_match_opensim(folder, file, cls, curves):
    path = opensim_data_path(folder, file)
    p = dm.muscle_parameters_from_osim(path)
    model = osim.Model(str(path))
    muscles = model.getMuscles()
    assert (
        p.curves is curves
        and p.num_muscles == muscles.getSize()
        and p.names[0] == muscles.get(0).getName()
    )
    for i, name in enumerate(p.names):
        m = cls.safeDownCast(muscles.get(name))
        assert float(p.max_isometric_force[i]) == m.getMaxIsometricForce()
        assert float(p.optimal_fiber_length[i]) == m.getOptimalFiberLength()
        assert float(p.tendon_slack_length[i]) == m.getTendonSlackLength()
        assert float(p.pennation_angle_at_optimal[i]) == m.getPennationAngleAtOptimalFiberLength()
        assert float(p.max_contraction_velocity[i]) == m.getMaxContractionVelocity()
        if curves is dm.MuscleCurves.MILLARD_2012:
            assert float(p.min_fiber_length[i]) == pytest.approx(
                m.getMinimumFiberLength(), abs=1e-15
            )
        else:
            min_length = m.getPennationModel().getMinimumFiberLength()
            assert float(p.min_fiber_length[i]) == pytest.approx(min_length, abs=1e-15)
        if curves is dm.MuscleCurves.THELEN_2003:
            assert float(p.curve_parameters.FmaxTendonStrain[i]) == m.get_FmaxTendonStrain()
            assert float(p.curve_parameters.Flen[i]) == m.get_Flen()
        else:
            assert float(p.fiber_damping[i]) == m.get_fiber_damping()


def test_parameters_subset_order_and_unknown_name():
    path = opensim_data_path("gait10dof18musc", "subject01.osim")
    p = dm.muscle_parameters_from_osim(path, ["soleus_r", "hamstrings_r"])
    assert p.names == ("soleus_r", "hamstrings_r")
    with pytest.raises(FileFormatError, match="no muscle named 'nope'"):
        dm.muscle_parameters_from_osim(path, ["nope"])


def test_rajagopal_curve_properties_and_rigid_flags():
    path = opensim_data_path("rajagopal2016", "Rajagopal2016.osim")
    p = dm.muscle_parameters_from_osim(path)
    assert p.num_muscles == 80 and int(p.ignore_tendon_compliance.sum()) == 34  # not <defaults>
    ref = dm.millard_fiber_force_length_curve(0.0, 0.7)
    assert torch.equal(p.curve_parameters.fiber_force_length.x_ctrl[0], ref.x_ctrl)
    assert p.curve_parameters.active_force_length.x_ctrl.shape == (80, 5, 6)


OSIM_TEMPLATE = """<OpenSimDocument Version="40000"><Model name="t"><ForceSet><objects>{}</objects>
</ForceSet></Model></OpenSimDocument>"""


def test_unknown_muscle_class_uses_degroote_with_warning():
    body = (
        '<Schutte1993Muscle_Deprecated name="a"><max_isometric_force>100</max_isometric_force>'
        "<optimal_fiber_length>0.1</optimal_fiber_length><tendon_slack_length>0.2</tendon_slack_length>"
        "<pennation_angle_at_optimal>0.1</pennation_angle_at_optimal>"
        "</Schutte1993Muscle_Deprecated>"
    )
    root = ET.fromstring(OSIM_TEMPLATE.format(body))
    with pytest.warns(UserWarning, match="Schutte1993Muscle_Deprecated"):
        p = dm.muscle_parameters_from_osim(root)
    assert p.curves is dm.MuscleCurves.DEGROOTE_FREGLY_2016
    assert float(p.max_contraction_velocity[0]) == 10.0  # OpenSim's default


def test_bad_parameters_raise():
    good = _params(dm.MuscleCurves.DEGROOTE_FREGLY_2016)
    kw = {
        k: getattr(good, k)
        for k in dm.MuscleParameters.__dataclass_fields__
        if k != "curve_parameters"
    }
    for field, bad in [
        ("max_isometric_force", -1.0),
        ("optimal_fiber_length", 0.0),
        ("tendon_slack_length", -0.1),
        ("max_contraction_velocity", 0.0),
        ("pennation_angle_at_optimal", math.pi / 2),
    ]:
        values = kw[field].clone()
        values[1] = bad
        with pytest.raises(ModelError, match=field):
            dm.MuscleParameters(**{**kw, field: values})
    with pytest.raises(ShapeError):
        dm.MuscleParameters(**{**kw, "tendon_slack_length": torch.ones(2, dtype=f64)})
    with pytest.raises(ModelError):
        dm.MuscleParameters(**{**kw, "fiber_damping": -torch.ones(3, dtype=f64)})
    with pytest.raises(ModelError):
        dm.MuscleParameters(**kw, curve_parameters=dm.ThelenParameters.default(3))
    body = (
        '<Thelen2003Muscle name="a"><max_isometric_force>-5</max_isometric_force>'
        "<optimal_fiber_length>0.1</optimal_fiber_length><tendon_slack_length>0.2</tendon_slack_length>"
        "</Thelen2003Muscle>"
    )
    with pytest.raises(FileFormatError, match="max_isometric_force"):
        dm.muscle_parameters_from_osim(ET.fromstring(OSIM_TEMPLATE.format(body)))
    with pytest.raises(ShapeError):
        dm.rigid_tendon_force(
            torch.ones(4, dtype=f64), torch.ones(4, dtype=f64), torch.zeros(4, dtype=f64), good
        )


# --- rigid tendon ----------------------------------------------------------------------------


def test_rigid_tendon_force_matches_opensim_millard():
    """Rajagopal2016's rigid-tendon Millard2012 muscles (fiber damping 0.1), random poses."""
    path = opensim_data_path("rajagopal2016", "Rajagopal2016.osim")
    model = osim.Model(str(path))
    state = model.initSystem()
    muscles = model.getMuscles()
    names = [muscles.get(i).getName() for i in range(muscles.getSize())]
    names = [n for n in names if muscles.get(n).get_ignore_tendon_compliance()]
    p = dm.muscle_parameters_from_osim(path, names)
    coords = model.getCoordinateSet()
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(4):
        for name, lo, hi in [
            ("hip_flexion_r", -0.3, 1.2),
            ("knee_angle_r", -1.5, 0.0),
            ("ankle_angle_r", -0.4, 0.3),
        ]:
            coords.get(name).setValue(state, rng.uniform(lo, hi), False)
            coords.get(name).setSpeedValue(state, rng.uniform(-3, 3))
        act = rng.uniform(0.05, 1.0, len(names))
        for i, n in enumerate(names):
            muscles.get(n).setActivation(state, act[i])
        model.realizeDynamics(state)
        rows.append(
            [
                (
                    act[i],
                    m.getLength(state),
                    m.getLengtheningSpeed(state),
                    m.getTendonForce(state),
                    m.getFiberLength(state),
                )
                for i, m in enumerate(muscles.get(n) for n in names)
            ]
        )
    r = torch.tensor(rows, dtype=f64)  # (4, M, 5)
    out = dm.rigid_tendon_force(r[..., 0], r[..., 1], r[..., 2], p)
    err = float((out.tendon_force - r[..., 3]).abs().max())
    print(
        f"rigid-tendon force max abs error {err:.3e} N (max force {float(r[..., 3].max()):.0f} N)"
    )
    assert err < 1e-8
    assert float((out.fiber_length - r[..., 4]).abs().max()) < 1e-12


def test_rigid_tendon_active_force_matches_opensim_thelen():
    """Thelen2003's calcInextensibleTendonActiveFiberForce (what static optimization uses)."""
    path = opensim_data_path("gait2392", "subject01_simbody.osim")
    names = ["glut_med1_r", "rect_fem_r", "vas_int_r", "med_gas_r", "soleus_r", "tib_ant_r"]
    model = osim.Model(str(path))
    state = model.initSystem()
    coords = model.getCoordinateSet()
    coords.get("knee_angle_r").setValue(state, -0.6)
    coords.get("knee_angle_r").setSpeedValue(state, 2.0)
    coords.get("ankle_angle_r").setSpeedValue(state, -1.5)
    model.realizeVelocity(state)
    p = dm.muscle_parameters_from_osim(path, names)
    muscles = [osim.Thelen2003Muscle.safeDownCast(model.getMuscles().get(n)) for n in names]
    lmt = torch.tensor([m.getLength(state) for m in muscles], dtype=f64)
    vmt = torch.tensor([m.getLengtheningSpeed(state) for m in muscles], dtype=f64)
    for a in (0.2, 0.7):
        ref = torch.tensor(
            [m.calcInextensibleTendonActiveFiberForce(state, a) for m in muscles], dtype=f64
        )
        act = torch.full((len(names),), a, dtype=f64)
        out = dm.rigid_tendon_force(act, lmt, vmt, p)
        err = float((act * out.F_active_per_a - ref).abs().max())
        print(f"a={a}: active force max abs error {err:.3e} N")
        assert err < 1e-6 * float(p.max_isometric_force.max())  # OpenSim's own fv tolerance 1e-6


@pytest.mark.parametrize("curves", ALL_CURVES)
def test_rigid_tendon_force_is_affine_in_activation(curves):
    p = _params(curves)
    lmt = (p.tendon_slack_length + p.optimal_fiber_length * 1.1).expand(5, 3)
    vmt = torch.linspace(-0.3, 0.3, 5, dtype=f64)[:, None].expand(5, 3)
    fv_a = 1.0 if curves is dm.MuscleCurves.THELEN_2003 else None
    f = [
        dm.rigid_tendon_force(torch.full((5, 3), a, dtype=f64), lmt, vmt, p, fv_activation=fv_a)
        for a in (0.0, 0.4, 1.0)
    ]
    assert torch.allclose(
        f[1].tendon_force,
        f[0].tendon_force + 0.4 * (f[2].tendon_force - f[0].tendon_force),
        atol=1e-9,
    )
    assert torch.allclose(f[1].tendon_force, 0.4 * f[1].F_active_per_a + f[1].F_passive, atol=1e-9)
    assert torch.allclose(f[1].F_active_per_a, f[2].F_active_per_a, atol=1e-9)
    no_passive = dm.rigid_tendon_force(
        torch.full((5, 3), 0.4, dtype=f64), lmt, vmt, p, passive=False, fv_activation=fv_a
    )
    assert torch.count_nonzero(no_passive.F_passive) == 0


@pytest.mark.parametrize("curves", ALL_CURVES)
def test_rigid_tendon_force_gradcheck_and_fd(curves):
    p = _params(curves)
    a = torch.tensor([[0.3, 0.6, 0.9], [0.5, 0.2, 0.8]], dtype=f64, requires_grad=True)
    lmt = (
        p.tendon_slack_length
        + p.optimal_fiber_length * torch.tensor([[1.05, 0.9, 1.2], [0.8, 1.1, 1.0]], dtype=f64)
    ).requires_grad_(True)
    vmt = torch.tensor([[-0.2, 0.05, 0.3], [0.1, -0.4, 0.02]], dtype=f64, requires_grad=True)

    def fn(a_, l_, v_):
        return dm.rigid_tendon_force(a_, l_, v_, p).tendon_force

    assert torch.autograd.gradcheck(fn, (a, lmt, vmt), eps=1e-7, atol=1e-5)
    (g,) = torch.autograd.grad(fn(a, lmt, vmt).sum(), lmt)
    h = 1e-7
    with torch.no_grad():
        fd = (fn(a, lmt + h, vmt) - fn(a, lmt - h, vmt)) / (2 * h)
    assert torch.allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_rigid_tendon_force_float32():
    p = _params(dm.MuscleCurves.MILLARD_2012).to(dtype=torch.float32)
    lmt = (p.tendon_slack_length + p.optimal_fiber_length).expand(4, 3)
    out = dm.rigid_tendon_force(torch.full((4, 3), 0.5), lmt, torch.zeros(4, 3), p)
    assert out.tendon_force.dtype == torch.float32 and out.tendon_force.shape == (4, 3)
    ref = dm.rigid_tendon_force(
        torch.full((4, 3), 0.5, dtype=f64),
        lmt.double(),
        torch.zeros(4, 3, dtype=f64),
        p.to(dtype=f64),
    )
    assert torch.allclose(out.tendon_force.double(), ref.tendon_force, rtol=1e-5)


# --- compliant-tendon equilibrium ------------------------------------------------------------


@pytest.mark.parametrize(
    "folder,file,names,poses",
    [
        (
            "gait10dof18musc",
            "subject01.osim",
            [
                "hamstrings_r",
                "bifemsh_r",
                "glut_max_r",
                "iliopsoas_r",
                "rect_fem_r",
                "vasti_r",
                "gastroc_r",
                "soleus_r",
                "tib_ant_r",
            ],
            [(0.0, 0.0, 0.0), (0.6, -1.0, 0.2), (-0.2, -0.3, -0.3)],
        ),
        (
            "gait2392",
            "subject01_simbody.osim",
            [
                "glut_med1_r",
                "semimem_r",
                "bifemsh_r",
                "rect_fem_r",
                "vas_int_r",
                "med_gas_r",
                "soleus_r",
                "tib_ant_r",
            ],
            [(0.0, 0.0, 0.0), (0.6, -1.0, 0.2), (-0.2, -0.3, -0.3)],
        ),
    ],
)
def test_equilibrium_matches_opensim(folder, file, names, poses):
    path = opensim_data_path(folder, file)
    model = osim.Model(str(path))
    state = model.initSystem()
    coords = model.getCoordinateSet()
    muscles = [model.getMuscles().get(n) for n in names]
    rows = []
    for hip, knee, ankle in poses:
        for name, q in (("hip_flexion_r", hip), ("knee_angle_r", knee), ("ankle_angle_r", ankle)):
            coords.get(name).setValue(state, q)
        for act in (0.02, 0.4, 1.0):
            for m in muscles:
                m.setActivation(state, act)
            model.equilibrateMuscles(state)
            model.realizeDynamics(state)
            rows.append(
                [
                    (act, m.getLength(state), m.getFiberLength(state), m.getTendonForce(state))
                    for m in muscles
                ]
            )
    r = torch.tensor(rows, dtype=f64)  # (9, M, 4)
    p = dm.muscle_parameters_from_osim(path, names)
    eq = dm.equilibrium_fiber_length(r[..., 0], r[..., 1], p)
    assert bool(eq.converged.all())
    err_l = float((eq.fiber_length - r[..., 2]).abs().max())
    err_f = float((eq.tendon_force - r[..., 3]).abs().max())
    print(f"{file}: fiber length max abs error {err_l:.3e} m, tendon force {err_f:.3e} N")
    # OpenSim stops at |residual| < 1e-8 F0 (Thelen) or similar: compare at that scale.
    assert err_l < 1e-8
    assert err_f < 1e-7 * float(p.max_isometric_force.max())


@pytest.mark.parametrize("curves", ALL_CURVES)
def test_equilibrium_balances_forces(curves):
    p = _params(curves)
    a = torch.rand(4, 3, dtype=f64) * 0.9 + 0.05
    lmt = p.tendon_slack_length * 1.02 + p.optimal_fiber_length * (
        0.8 + 0.4 * torch.rand(4, 3, dtype=f64)
    )
    eq = dm.equilibrium_fiber_length(a, lmt, p)
    assert bool(eq.converged.all())
    rigid_like = dm.rigid_tendon_force(
        a, lmt - eq.tendon_length + p.tendon_slack_length, torch.zeros_like(a), p
    )
    # the fiber force along the tendon at the equilibrium fiber length equals the tendon force
    assert torch.allclose(rigid_like.tendon_force, eq.tendon_force, rtol=1e-8, atol=1e-6)
    assert torch.allclose(eq.tendon_length + eq.fiber_length_along_tendon, lmt, atol=1e-14)


@pytest.mark.parametrize("curves", ALL_CURVES)
def test_equilibrium_gradcheck_and_fd(curves):
    p = _params(curves)
    a = torch.tensor([[0.3, 0.6, 0.9]], dtype=f64, requires_grad=True)
    lmt = (
        p.tendon_slack_length * 1.03
        + p.optimal_fiber_length * torch.tensor([1.0, 0.95, 1.1], dtype=f64)
    ).requires_grad_(True)
    f0 = p.max_isometric_force.clone().requires_grad_(True)

    def fn(a_, l_, f0_):
        q = dm.MuscleParameters(
            f0_,
            p.optimal_fiber_length,
            p.tendon_slack_length,
            p.pennation_angle_at_optimal,
            p.max_contraction_velocity,
            curves=curves,
        )
        eq = dm.equilibrium_fiber_length(a_, l_, q)
        return torch.cat([eq.fiber_length, eq.tendon_force / 1000.0], -1)

    assert torch.autograd.gradcheck(fn, (a, lmt, f0), eps=1e-6, atol=1e-5, rtol=1e-4)
    (g,) = torch.autograd.grad(fn(a, lmt, f0)[..., :3].sum(), a)
    h = 1e-6
    with torch.no_grad():
        fd = (fn(a + h, lmt, f0)[..., :3] - fn(a - h, lmt, f0)[..., :3]) / (2 * h)
    assert torch.allclose(g, fd, rtol=1e-5, atol=1e-9)


def test_equilibrium_float32_and_warnings_free():
    p = _params(dm.MuscleCurves.DEGROOTE_FREGLY_2016)
    lmt = p.tendon_slack_length * 1.03 + p.optimal_fiber_length
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e32 = dm.equilibrium_fiber_length(
            torch.full((2, 3), 0.5), lmt.float(), p.to(dtype=torch.float32)
        )
    e64 = dm.equilibrium_fiber_length(torch.full((2, 3), 0.5, dtype=f64), lmt, p)
    assert e32.fiber_length.dtype == torch.float32 and bool(e32.converged.all())
    assert torch.allclose(e32.fiber_length.double(), e64.fiber_length, rtol=1e-4)


@pytest.mark.parametrize(
    "folder,file",
    [
        ("gait2392", "subject01_simbody.osim"),
        ("gait10dof18musc", "subject01.osim"),
        ("rajagopal2016", "Rajagopal2016.osim"),
    ],
)
def test_equilibrium_all_muscles_random_poses_match_opensim(folder, file):
    """Every compliant-tendon muscle, random poses and activations, slack muscles included
    (OpenSim clamps those at their minimum fiber length, and so does diffbio)."""
    path = opensim_data_path(folder, file)
    model = osim.Model(str(path))
    state = model.initSystem()
    muscles = model.getMuscles()
    names = [muscles.get(i).getName() for i in range(muscles.getSize())]
    names = [n for n in names if not muscles.get(n).get_ignore_tendon_compliance()]
    coords = model.getCoordinateSet()
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(4):
        for i in range(coords.getSize()):
            c = coords.get(i)
            if c.getLocked(state) or c.getMotionType() != 1 or c.isConstrained(state):
                continue
            c.setValue(
                state, rng.uniform(max(c.getRangeMin(), -1.2), min(c.getRangeMax(), 1.2)), False
            )
        model.assemble(state)
        act = rng.uniform(0.02, 1.0)
        for n in names:
            muscles.get(n).setActivation(state, act)
        model.equilibrateMuscles(state)
        model.realizeDynamics(state)
        rows.append(
            [
                (
                    act,
                    muscles.get(n).getLength(state),
                    muscles.get(n).getFiberLength(state),
                    muscles.get(n).getTendonForce(state),
                )
                for n in names
            ]
        )
    r = torch.tensor(rows, dtype=f64)
    p = dm.muscle_parameters_from_osim(path, names)
    eq = dm.equilibrium_fiber_length(r[..., 0], r[..., 1], p)
    assert bool(eq.converged.all())
    # OpenSim lets an unpennated slack Thelen2003 fiber reach length 0; diffbio stops at 1e-3 l_opt.
    at_min = int(((eq.fiber_length - p.min_fiber_length).abs() < 1e-12).sum())
    floor = (r[..., 2] == 0) & (eq.tendon_force.abs() < 1e-9)
    err_l = float((eq.fiber_length - r[..., 2]).abs()[~floor].max())
    err_f = float((eq.tendon_force - r[..., 3]).abs().max())
    print(
        f"{file}: {r.shape[1]} muscles x {r.shape[0]} poses, {int(floor.sum())} at zero length, {at_min} clamped at the minimum; "
        f"fiber length max abs error {err_l:.3e} m, tendon force {err_f:.3e} N"
    )
    assert err_l < 1e-8
    assert err_f < 1e-7 * float(p.max_isometric_force.max())
    assert torch.allclose(
        eq.fiber_length[floor], 1e-3 * p.optimal_fiber_length.expand_as(floor)[floor]
    )


def test_equilibrium_matches_opensim_degroote():
    """gait10dof18musc with its muscles replaced by OpenSim's DeGrooteFregly2016Muscle."""
    path = opensim_data_path("gait10dof18musc", "subject01.osim")
    model = osim.Model(str(path))
    osim.DeGrooteFregly2016Muscle.replaceMuscles(model)
    state = model.initSystem()
    muscles = model.getMuscles()
    dg = [
        osim.DeGrooteFregly2016Muscle.safeDownCast(muscles.get(i)) for i in range(muscles.getSize())
    ]
    g = lambda f: torch.tensor([f(m) for m in dg], dtype=f64)  # noqa: E731
    p = dm.MuscleParameters(
        g(lambda m: m.get_max_isometric_force()),
        g(lambda m: m.get_optimal_fiber_length()),
        g(lambda m: m.get_tendon_slack_length()),
        g(lambda m: m.get_pennation_angle_at_optimal()),
        g(lambda m: m.get_max_contraction_velocity()),
        curves=dm.MuscleCurves.DEGROOTE_FREGLY_2016,
        fiber_damping=g(lambda m: m.get_fiber_damping()),
        curve_parameters=dm.DeGrooteParameters(
            g(lambda m: m.get_active_force_width_scale()),
            g(lambda m: m.get_passive_fiber_strain_at_one_norm_force()),
            g(lambda m: m.get_tendon_strain_at_one_norm_force()),
        ),
    )
    coords = model.getCoordinateSet()
    rows = []
    for hip, knee, ankle in [(0.0, 0.0, 0.0), (0.6, -1.0, 0.2), (-0.2, -0.3, -0.3)]:
        for name, q in (("hip_flexion_r", hip), ("knee_angle_r", knee), ("ankle_angle_r", ankle)):
            coords.get(name).setValue(state, q)
        for act in (0.05, 0.5, 1.0):
            for m in dg:
                m.setActivation(state, act)
            model.equilibrateMuscles(state)
            model.realizeDynamics(state)
            rows.append(
                [
                    (act, m.getLength(state), m.getFiberLength(state), m.getTendonForce(state))
                    for m in dg
                ]
            )
    r = torch.tensor(rows, dtype=f64)
    eq = dm.equilibrium_fiber_length(r[..., 0], r[..., 1], p)
    err_l = float((eq.fiber_length - r[..., 2]).abs().max())
    err_f = float((eq.tendon_force - r[..., 3]).abs().max())
    print(
        f"DeGrooteFregly2016: fiber length max abs error {err_l:.3e} m, tendon force {err_f:.3e} N"
    )
    assert bool(eq.converged.all()) and err_l < 1e-8 and err_f < 1e-5


@pytest.mark.parametrize("curves", ALL_CURVES)
def test_rigid_tendon_slack_muscle_is_clamped_with_finite_gradients(curves):
    p = _params(curves)  # the first muscle is unpennated
    lmt = torch.stack([p.tendon_slack_length * 0.9, p.tendon_slack_length + p.optimal_fiber_length])
    lmt.requires_grad_(True)
    out = dm.rigid_tendon_force(
        torch.full((2, 3), 0.5, dtype=f64), lmt, torch.zeros(2, 3, dtype=f64), p
    )
    assert torch.allclose(
        out.fiber_length[0], torch.maximum(p.min_fiber_length, 1e-3 * p.optimal_fiber_length)
    )
    assert float(out.pennation_angle[1, 0].detach()) == 0.0
    (g,) = torch.autograd.grad(
        (out.tendon_force + out.pennation_angle + out.fiber_length).sum(), lmt
    )
    assert bool(torch.isfinite(g).all()) and bool((g[0] == 0).all())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("curves", ALL_CURVES)
def test_cuda_matches_cpu(curves):
    p = _params(curves)
    a = torch.rand(5, 3, dtype=f64) * 0.9 + 0.05
    lmt = p.tendon_slack_length * 1.02 + p.optimal_fiber_length * (
        0.8 + 0.4 * torch.rand(5, 3, dtype=f64)
    )
    pc = p.to(device="cuda")
    eq, eq_c = (
        dm.equilibrium_fiber_length(a, lmt, p),
        dm.equilibrium_fiber_length(a.cuda(), lmt.cuda(), pc),
    )
    assert torch.allclose(eq_c.fiber_length.cpu(), eq.fiber_length, atol=1e-12)
    v = torch.zeros_like(a)
    f, f_c = (
        dm.rigid_tendon_force(a, lmt, v, p),
        dm.rigid_tendon_force(a.cuda(), lmt.cuda(), v.cuda(), pc),
    )
    assert torch.allclose(f_c.tendon_force.cpu(), f.tendon_force, atol=1e-9)
