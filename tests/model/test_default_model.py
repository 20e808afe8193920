"""The built-in default model, checked against OpenSim 4.6 loading the generated XML."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffbio import ModelError
from diffbio.model._default import DEFAULT_COORDINATES, default_model_xml

osim = pytest.importorskip("opensim")

BODIES = (
    "pelvis",
    "torso",
    "femur_r",
    "tibia_r",
    "talus_r",
    "calcn_r",
    "femur_l",
    "tibia_l",
    "talus_l",
    "calcn_l",
)


def _load(tmp_path, **kwargs):
    path = tmp_path / f"model_{abs(hash(tuple(sorted(kwargs.items()))))}.osim"
    path.write_text(default_model_xml(**kwargs))
    model = osim.Model(str(path))
    state = model.initSystem()
    return model, state


@pytest.fixture(scope="module")
def standard(tmp_path_factory):
    return _load(tmp_path_factory.mktemp("default"))


def _set(model, state, values: dict[str, float]) -> None:
    coords = model.getCoordinateSet()
    for i in range(coords.getSize()):
        c = coords.get(i)
        c.setValue(state, values.get(c.getName(), c.getDefaultValue()), False)
    model.realizePosition(state)


def _vec(v) -> np.ndarray:
    return np.array([v.get(i) for i in range(3)])


def _markers(model, state) -> dict[str, np.ndarray]:
    ms = model.getMarkerSet()
    return {
        ms.get(i).getName(): _vec(ms.get(i).getLocationInGround(state)) for i in range(ms.getSize())
    }


def _sphere_bottoms(model, state) -> dict[str, float]:
    out = {}
    geoms = model.getContactGeometrySet()
    for i in range(geoms.getSize()):
        sphere = osim.ContactSphere.safeDownCast(geoms.get(i))
        if sphere is not None:
            p = sphere.getFrame().findStationLocationInGround(state, sphere.get_location())
            out[sphere.getName()] = p.get(1) - sphere.getRadius()
    return out


def test_document_header():
    xml = default_model_xml()
    assert xml.startswith(
        '<?xml version="1.0" encoding="UTF-8" ?>\n<OpenSimDocument Version="40000">'
    )
    assert '<Model name="diffbio_gait">' in xml
    assert '<Model name="other">' in default_model_xml(name="other")


@pytest.mark.parametrize(
    ("height", "mass", "sex"), [(1.75, 75.0, "male"), (1.62, 58.3, "female"), (1.91, 102.0, "male")]
)
def test_opensim_loads_with_exact_mass(tmp_path, height, mass, sex):
    model, state = _load(tmp_path, height=height, mass=mass, sex=sex)
    assert model.getTotalMass(state) == pytest.approx(mass, abs=1e-9)
    assert (
        tuple(model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize()))
        == BODIES
    )
    coords = model.getCoordinateSet()
    assert tuple(coords.get(i).getName() for i in range(coords.getSize())) == DEFAULT_COORDINATES
    assert len(DEFAULT_COORDINATES) == 21
    for i in range(coords.getSize()):
        c = coords.get(i)
        assert c.getRangeMin() < c.getDefaultValue() < c.getRangeMax(), c.getName()
        # Motion types: translations only for the three pelvis translations.
        is_translation = c.getMotionType() == osim.Coordinate.Translational
        assert is_translation == (c.getName() in ("pelvis_tx", "pelvis_ty", "pelvis_tz"))


def test_segment_masses_follow_de_leva(standard):
    model, _ = standard
    mass = {b: model.getBodySet().get(b).getMass() for b in BODIES}
    # de Leva (1996) Table 4, male: thigh 14.16 %, shank 4.33 %, foot 1.37 %, lower trunk 11.17 %.
    assert mass["femur_r"] == pytest.approx(0.1416 * 75.0, rel=1e-12)
    assert mass["tibia_l"] == pytest.approx(0.0433 * 75.0, rel=1e-12)
    assert mass["calcn_r"] + mass["talus_r"] == pytest.approx(0.0137 * 75.0, rel=1e-12)
    assert mass["pelvis"] == pytest.approx(0.1117 * 75.0, rel=1e-12)
    # Torso: head 6.94 + upper trunk 15.96 + middle trunk 16.33 + 2 x (2.71 + 1.62 + 0.61) %.
    assert mass["torso"] == pytest.approx(0.4911 * 75.0, rel=1e-12)


def test_inertia_axes(standard):
    model, _ = standard

    def inertia(body):
        m = model.getBodySet().get(body).getInertia().getMoments()
        return np.array([m.get(i) for i in range(3)])

    femur = inertia("femur_r")
    # de Leva thigh: sagittal = transverse radius (0.329), longitudinal (Y) far smaller.
    assert femur[0] == pytest.approx(femur[2], rel=1e-12) and femur[1] < 0.25 * femur[0]
    L = 1.75 * 422.2 / 1741.0
    assert femur[1] == pytest.approx(0.1416 * 75.0 * (0.149 * L) ** 2, rel=1e-12)
    torso = inertia("torso")
    assert torso[0] > torso[2] > torso[1]  # wider than deep, taller than wide
    foot = inertia("calcn_r")
    assert foot[0] < foot[2] < foot[1]  # long axis X smallest
    for body in BODIES:
        i = inertia(body)
        assert i[0] + i[1] >= i[2] and i[1] + i[2] >= i[0] and i[0] + i[2] >= i[1], body


def test_standing_pose_on_the_floor(standard):
    model, state = standard
    _set(model, state, {})
    bottoms = _sphere_bottoms(model, state)
    assert len(bottoms) == 8
    assert max(abs(v) for v in bottoms.values()) < 1e-12
    com = _vec(model.calcMassCenterPosition(state))
    # Whole-body centre of mass of a standing adult: about 0.55-0.57 of stature.
    assert 0.53 * 1.75 < com[1] < 0.59 * 1.75
    assert abs(com[2]) < 1e-12
    markers = _markers(model, state)
    assert markers["RASI"][2] > 0 > markers["LASI"][2]
    assert markers["RASI"][0] > markers["RPSI"][0]
    assert 0.80 * 1.75 < markers["RSHO"][1] < 0.86 * 1.75
    assert 0.0 < markers["RHEE"][1] < markers["RANK"][1] < markers["RKNE"][1] < markers["RASI"][1]
    assert markers["RTOE"][0] > markers["RANK"][0] > markers["RHEE"][0]


def test_scaling_with_height_and_mass(tmp_path):
    small, s_state = _load(tmp_path, height=1.5, mass=50.0)
    large, l_state = _load(tmp_path, height=1.9, mass=90.0)
    _set(small, s_state, {})
    _set(large, l_state, {})
    ratio = 1.9 / 1.5
    for body in BODIES:
        bs, bl = small.getBodySet().get(body), large.getBodySet().get(body)
        assert bl.getMass() / bs.getMass() == pytest.approx(90.0 / 50.0, rel=1e-12)
        assert _vec(bl.getMassCenter()) == pytest.approx(
            ratio * _vec(bs.getMassCenter()), abs=1e-12
        )
        np.testing.assert_allclose(
            _vec(bl.getPositionInGround(l_state)),
            ratio * _vec(bs.getPositionInGround(s_state)),
            atol=1e-12,
        )
        ms, ml = bs.getInertia().getMoments(), bl.getInertia().getMoments()
        for i in range(3):
            assert ml.get(i) == pytest.approx(ms.get(i) * (90.0 / 50.0) * ratio**2, rel=1e-12)
    ms, ml = _markers(small, s_state), _markers(large, l_state)
    for name in ms:
        np.testing.assert_allclose(ml[name], ratio * ms[name], atol=1e-12)


def test_sign_conventions(standard):
    """gait2392 signs: flexion, adduction, internal rotation, dorsiflexion, inversion and
    lumbar extension positive, knee flexion negative; pelvis_tilt positive tilts back."""
    model, state = standard
    _set(model, state, {})
    m0 = _markers(model, state)
    a = 0.3

    def moved(coord, value=a):
        _set(model, state, {coord: value})
        return {k: v - m0[k] for k, v in _markers(model, state).items()}

    assert moved("hip_flexion_r")["RKNE"][0] > 0.05 and moved("hip_flexion_l")["LKNE"][0] > 0.05
    assert (
        moved("hip_adduction_r")["RKNE"][2] < -0.05 and moved("hip_adduction_l")["LKNE"][2] > 0.05
    )
    assert moved("hip_rotation_r")["RTOE"][2] < -0.02 and moved("hip_rotation_l")["LTOE"][2] > 0.02
    assert (
        moved("knee_angle_r", -a)["RANK"][0] < -0.05
        and moved("knee_angle_l", -a)["LANK"][0] < -0.05
    )
    assert moved("ankle_angle_r")["RTOE"][1] > 0.02 and moved("ankle_angle_l")["LTOE"][1] > 0.02
    # Inversion: the lateral forefoot drops against the medial one and the toes turn in.
    d = moved("subtalar_angle_r")
    assert d["RMT1"][1] - d["RMT5"][1] > 0.01 and d["RTOE"][2] < -0.02
    d = moved("subtalar_angle_l")
    assert d["LMT1"][1] - d["LMT5"][1] > 0.01 and d["LTOE"][2] > 0.02
    assert moved("lumbar_extension")["C7"][0] < -0.05
    assert moved("lumbar_bending")["RSHO"][1] < -0.02
    assert moved("pelvis_tilt")["RPSI"][1] < -0.01  # posterior tilt: the PSIS drop
    assert moved("pelvis_list")["RASI"][1] < -0.01
    assert moved("pelvis_rotation")["RASI"][0] > 0.01


def _marker_jacobian(model, state, q: dict[str, float], h: float = 1e-6) -> np.ndarray:
    """(3K, Q) central-difference Jacobian of every marker position in ground."""
    cols = []
    for name in DEFAULT_COORDINATES:
        plus, minus = dict(q), dict(q)
        plus[name] = q.get(name, model.getCoordinateSet().get(name).getDefaultValue()) + h
        minus[name] = plus[name] - 2 * h
        _set(model, state, plus)
        mp = np.concatenate(list(_markers(model, state).values()))
        _set(model, state, minus)
        mm = np.concatenate(list(_markers(model, state).values()))
        cols.append((mp - mm) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("pose", ["default", "walking"])
def test_markers_determine_every_coordinate(standard, pose):
    model, state = standard
    q: dict[str, float] = {}
    if pose == "walking":
        q = {
            "hip_flexion_r": 0.4,
            "knee_angle_r": -0.8,
            "ankle_angle_r": -0.2,
            "hip_flexion_l": -0.2,
            "knee_angle_l": -0.2,
            "subtalar_angle_l": 0.1,
            "pelvis_rotation": 0.1,
            "lumbar_rotation": -0.1,
        }
    J = _marker_jacobian(model, state, q)
    assert J.shape == (3 * model.getMarkerSet().getSize(), 21)
    s = np.linalg.svd(J, compute_uv=False)
    # Full column rank with a well-conditioned least-squares problem (units: m per rad or m).
    assert s[-1] > 0.01 and s[0] / s[-1] < 1e3


def test_bad_arguments():
    with pytest.raises(ModelError, match="sex"):
        default_model_xml(sex="other")
    with pytest.raises(ModelError, match="height"):
        default_model_xml(height=math.nan)
    with pytest.raises(ModelError, match="mass"):
        default_model_xml(mass=-1.0)
