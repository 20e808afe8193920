"""Muscles of the built-in default model: count, signs and magnitudes of the moment arms over
the synthetic walk, fibre lengths, mirroring and scaling, and OpenSim 4.6 as the reference."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from diffbio.data import synthetic_walk
from diffbio.model import default_model, default_model_xml
from diffbio.model._default_muscles import DEFAULT_MUSCLE_GROUPS
from diffbio.muscles import (
    MuscleCurves,
    moment_arms,
    muscle_names,
    muscle_parameters_from_osim,
    muscle_tendon_lengths,
)

FRAMES = slice(0, None, 10)  # every 10th frame of the 2 s walk (21 frames)


@pytest.fixture(scope="module")
def model():
    return default_model()


@pytest.fixture(scope="module")
def walk(model):
    trial = synthetic_walk()
    assert trial.coordinate_names == model.coordinate_names
    return torch.tensor(trial.q[FRAMES], dtype=torch.float64)


@pytest.fixture(scope="module")
def arms(model, walk):
    return moment_arms(model, walk)  # (T, M, Q) [m]


@pytest.fixture(scope="module")
def params():
    root = ET.fromstring(default_model_xml()).find("Model")
    return muscle_parameters_from_osim(root)


def _r(model, arms, muscle, coordinate):
    """(T,) moment arm [m] of one muscle about one coordinate, both sides stacked."""
    names = muscle_names(model)
    out = []
    for side in ("r", "l"):
        m = names.index(f"{muscle}_{side}")
        out.append(arms[:, m, model.coordinate_index(f"{coordinate}_{side}")])
    return torch.cat(out)


def test_muscle_set(model, params):
    names = muscle_names(model)
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    right = [n[:-2] for n in names if n.endswith("_r")]
    left = [n[:-2] for n in names if n.endswith("_l")]
    assert right == left and len(right) + len(left) == len(names)
    assert params.curves is MuscleCurves.DEGROOTE_FREGLY_2016
    assert params.names == names
    assert bool((params.max_isometric_force > 50.0).all())
    assert bool((params.optimal_fiber_length > 0.02).all())
    assert bool((params.tendon_slack_length > 0.01).all())
    assert bool((params.pennation_angle_at_optimal < math.radians(30.0)).all())
    for group in DEFAULT_MUSCLE_GROUPS.values():
        assert all(f"{m}_r" in names for m in group)
    # the soleus is the strongest muscle (Ward et al. 2009), the sartorius the longest-fibred
    f0 = dict(zip(names, params.max_isometric_force.tolist()))
    lopt = dict(zip(names, params.optimal_fiber_length.tolist()))
    assert max(f0, key=f0.get) in ("soleus_r", "soleus_l")
    assert max(lopt, key=lopt.get) in ("sart_r", "sart_l")


def test_without_muscles():
    root = ET.fromstring(default_model_xml(muscles=False)).find("Model")
    assert len(root.find("ForceSet/objects")) == 0
    model = default_model()
    xml_m = ET.fromstring(default_model_xml()).find("Model")
    # the muscles change nothing else in the model
    for tag in ("BodySet", "JointSet", "MarkerSet", "ContactGeometrySet"):
        assert ET.tostring(xml_m.find(tag)) == ET.tostring(root.find(tag))
    assert len(muscle_names(model)) == len(xml_m.find("ForceSet/objects"))


# Published ranges over the gait range [m], gait2392 signs (r = -dl/dq): knee_angle positive
# in extension, hip_flexion in flexion, hip_adduction in adduction, ankle_angle in
# dorsiflexion, subtalar_angle in inversion.
RANGES = [
    # quadriceps knee extension 3-6 cm (Buford et al. 1997; Krevolin et al. 2004)
    (("vaslat", "vasmed", "vasint", "recfem"), "knee_angle", 0.03, 0.06),
    # hamstrings hip extension 4-8 cm (Nemeth & Ohlsen 1985; Arnold et al. 2010)
    (("semimem", "semiten", "bflh"), "hip_flexion", -0.08, -0.04),
    # hamstrings knee flexion 2-6 cm (Buford et al. 1997)
    (("semimem", "semiten", "bflh", "bfsh"), "knee_angle", -0.06, -0.02),
    # Achilles tendon 4-6 cm (Maganaris et al. 1998; Rugg et al. 1990)
    (("soleus", "gasmed", "gaslat"), "ankle_angle", -0.06, -0.04),
    # gastrocnemius knee flexion 1-3 cm (Buford et al. 1997)
    (("gasmed", "gaslat"), "knee_angle", -0.03, -0.01),
    # gluteus maximus hip extension 2-8 cm (Nemeth & Ohlsen 1985; Dostal et al. 1986)
    (("glmax1", "glmax2", "glmax3"), "hip_flexion", -0.08, -0.015),
    # gluteus medius / minimus abduction 3-7 cm (Dostal et al. 1986)
    (("glmed1", "glmed2", "glmed3", "glmin"), "hip_adduction", -0.07, -0.025),
    # adductors 2-8 cm (Dostal et al. 1986)
    (("addlong", "addbrev", "addmag1", "addmag2", "grac"), "hip_adduction", 0.02, 0.08),
    # iliopsoas and rectus femoris hip flexion 1.5-5 cm (Arnold et al. 2010; Blemker & Delp)
    (("iliacus", "psoas", "recfem"), "hip_flexion", 0.015, 0.05),
    # tibialis anterior / EDL dorsiflexion 3-5 cm (Klein et al. 1996; Maganaris 2000)
    (("tibant", "edl"), "ankle_angle", 0.03, 0.05),
    # peronei: eversion and plantarflexion (Klein et al. 1996)
    (("perlong", "perbrev"), "subtalar_angle", -0.04, -0.015),
    (("perlong", "perbrev", "tibpost", "fdl"), "ankle_angle", -0.035, -0.01),
    # tibialis posterior inversion (Klein et al. 1996)
    (("tibpost",), "subtalar_angle", 0.01, 0.03),
]


@pytest.mark.parametrize("muscles, coordinate, lo, hi", RANGES)
def test_moment_arms_over_the_walk(model, arms, muscles, coordinate, lo, hi):
    for m in muscles:
        r = _r(model, arms, m, coordinate)
        assert float(r.min()) >= lo and float(r.max()) <= hi, (m, coordinate, r.min(), r.max())


def test_muscles_act_only_across_the_joints_they_span(model, arms):
    names = muscle_names(model)
    cn = model.coordinate_names
    spans = {
        "vaslat": ("knee_angle",),
        "bfsh": ("knee_angle",),
        "soleus": ("ankle_angle", "subtalar_angle"),
        "glmed1": ("hip_flexion", "hip_adduction", "hip_rotation"),
        "gasmed": ("knee_angle", "ankle_angle", "subtalar_angle"),
    }
    for m, coords in spans.items():
        i = names.index(f"{m}_r")
        allowed = [cn.index(f"{c}_r") for c in coords]
        others = [j for j in range(len(cn)) if j not in allowed]
        assert float(arms[:, i, others].abs().max()) < 1e-12
        assert float(arms[:, i, allowed].abs().amax(0).min()) > 1e-3


def test_lengths_and_fiber_lengths_over_the_walk(model, walk, params):
    lmt = muscle_tendon_lengths(model, walk)
    assert bool((lmt > 0.05).all())
    lopt, lts = params.optimal_fiber_length, params.tendon_slack_length
    h = lopt * torch.sin(params.pennation_angle_at_optimal)
    along = lmt - lts
    assert bool((along > h).all())  # fibres never slacker than the rigid-tendon minimum
    norm = torch.sqrt(along**2 + h**2) / lopt  # rigid tendon, constant-thickness pennation
    assert float(norm.min()) >= 0.5 and float(norm.max()) <= 1.6, (norm.min(), norm.max())


def test_left_mirrors_right(model):
    q = torch.zeros(model.num_coordinates, dtype=torch.float64)
    rng = np.random.default_rng(1)
    for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle"):
        v = float(rng.uniform(-0.4, 0.3))
        q[model.coordinate_index(f"{c}_r")] = v
        q[model.coordinate_index(f"{c}_l")] = v
    q[model.coordinate_index("subtalar_angle_r")] = 0.1
    q[model.coordinate_index("subtalar_angle_l")] = 0.1
    names = muscle_names(model)
    ir = [i for i, n in enumerate(names) if n.endswith("_r")]
    il = [names.index(names[i][:-2] + "_l") for i in ir]
    lmt = muscle_tendon_lengths(model, q)
    torch.testing.assert_close(lmt[il], lmt[ir], rtol=0, atol=1e-12)
    r = moment_arms(model, q)
    cr = [model.coordinate_index(f"{c}_r") for c in ("hip_flexion", "knee_angle", "ankle_angle")]
    cl = [model.coordinate_index(f"{c}_l") for c in ("hip_flexion", "knee_angle", "ankle_angle")]
    torch.testing.assert_close(r[il][:, cl], r[ir][:, cr], rtol=0, atol=1e-12)


def test_scaling_with_height_and_mass():
    q = torch.zeros(21, dtype=torch.float64)
    q[9] = -0.5  # knee_angle_r
    q[6] = 0.3  # hip_flexion_r
    small, ref = default_model(1.5, 60.0), default_model()
    r_small, r_ref = moment_arms(small, q), moment_arms(ref, q)
    # every dimension of the (male) default model is proportional to height
    torch.testing.assert_close(r_small, r_ref * (1.5 / 1.75), rtol=1e-10, atol=1e-14)
    p_small = muscle_parameters_from_osim(ET.fromstring(default_model_xml(1.5, 60.0)).find("Model"))
    p_ref = muscle_parameters_from_osim(ET.fromstring(default_model_xml()).find("Model"))
    torch.testing.assert_close(
        p_small.max_isometric_force, p_ref.max_isometric_force * 60.0 / 75.0, rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        p_small.optimal_fiber_length, p_ref.optimal_fiber_length * 1.5 / 1.75, rtol=1e-12, atol=0
    )
    female = muscle_parameters_from_osim(
        ET.fromstring(default_model_xml(1.6, 55.0, sex="female")).find("Model")
    )
    assert bool((female.tendon_slack_length > 0.01).all())


def test_moment_arms_are_minus_the_length_gradient(model):
    """Central differences of the path length and a float64 gradcheck of it on this model."""
    names = muscle_names(model)
    q0 = torch.tensor(synthetic_walk().q[37], dtype=torch.float64)
    r = moment_arms(model, q0)
    eps = 1e-6
    for c in ("hip_flexion_r", "knee_angle_l", "ankle_angle_r", "subtalar_angle_l"):
        j = model.coordinate_index(c)
        dq = torch.zeros_like(q0)
        dq[j] = eps
        fd = (muscle_tendon_lengths(model, q0 + dq) - muscle_tendon_lengths(model, q0 - dq)) / (
            2 * eps
        )
        torch.testing.assert_close(r[:, j], -fd, rtol=0, atol=1e-8)
    pick = [names.index(n) for n in ("semimem_r", "gasmed_l", "tibant_r")]

    def f(q):
        return muscle_tendon_lengths(model, q)[..., pick]

    assert torch.autograd.gradcheck(f, (q0.clone().requires_grad_(True),))


def test_opensim_loads_and_agrees(model, tmp_path):
    osim = pytest.importorskip("opensim")
    path = tmp_path / "default_muscles.osim"
    path.write_text(default_model_xml())
    om = osim.Model(str(path))
    state = om.initSystem()
    muscles = om.getMuscles()
    names = muscle_names(model)
    assert muscles.getSize() == len(names)
    assert [muscles.get(i).getName() for i in range(muscles.getSize())] == list(names)
    assert muscles.get(0).getConcreteClassName() == "DeGrooteFregly2016Muscle"
    trial = synthetic_walk()
    coords = om.getCoordinateSet()
    check = (
        "hip_flexion_r",
        "hip_adduction_l",
        "knee_angle_r",
        "ankle_angle_l",
        "subtalar_angle_r",
    )
    for frame in (0, 55, 130):
        q = trial.q[frame]
        for k, name in enumerate(model.coordinate_names):
            coords.get(name).setValue(state, float(q[k]), False)
        om.realizePosition(state)
        qt = torch.tensor(q, dtype=torch.float64)
        lmt = muscle_tendon_lengths(model, qt).numpy()
        r = moment_arms(model, qt).numpy()
        ref_l = np.array([muscles.get(i).getLength(state) for i in range(len(names))])
        np.testing.assert_allclose(lmt, ref_l, rtol=0, atol=1e-10)
        for c in check:
            j = model.coordinate_index(c)
            oc = coords.get(c)
            ref_r = np.array(
                [muscles.get(i).computeMomentArm(state, oc) for i in range(len(names))]
            )
            np.testing.assert_allclose(r[:, j], ref_r, rtol=0, atol=1e-7)


def test_strength_matches_rajagopal2016(params):
    """Maximum isometric forces are young-adult strengths: per muscle within a factor 1.7 of
    Rajagopal et al. (2016)'s (parts summed where the models split a muscle differently),
    and their median ratio near 1 (the cadaver values of Ward et al. 2009 alone are about
    half)."""
    from tests.conftest import opensim_data_path

    path = opensim_data_path("rajagopal2016", "Rajagopal2016.osim")
    root = ET.parse(path).getroot()
    theirs: dict[str, float] = {}
    for e in root.iter():
        name = e.get("name") or ""
        f = e.find("max_isometric_force")
        if f is None or not name.endswith("_r"):
            continue
        base = name[:-2]
        for merged in ("addmag", "glmin", "glmax", "glmed"):
            if base.startswith(merged):
                base = merged
        theirs[base] = theirs.get(base, 0.0) + float(f.text)
    mass = sum(float(m.text) for m in root.iter("mass"))
    names = params.names
    ours: dict[str, float] = {}
    for n, f0 in zip(names, params.max_isometric_force.tolist()):
        if n.endswith("_r"):
            base = n[:-2].rstrip("123") if n[:-2] not in theirs else n[:-2]
            ours[base] = ours.get(base, 0.0) + f0
    common = sorted(set(ours) & set(theirs))
    assert len(common) >= 25
    ratio = np.array([ours[k] / (theirs[k] * 75.0 / mass) for k in common])
    assert 0.9 < float(np.median(ratio)) < 1.1
    assert bool(((ratio > 1 / 1.7) & (ratio < 1.7)).all()), dict(zip(common, ratio.round(2)))
