"""The built-in default model: a 3D gait model authored in this project.

:func:`default_model_xml` writes an OpenSim 4.x model document (``<OpenSimDocument
Version="40000">``) that OpenSim 4.6 loads as is and that the project's own importer reads
like any user model. Nothing is copied from OpenSim's example models: only the names and
sign conventions of the coordinates follow gait2392 / Rajagopal 2016 (OpenSim body frames:
X forward, Y up, Z to the right; ``knee_angle`` negative in flexion as in gait2392).

Bodies (10): pelvis, femur_r, tibia_r, talus_r, calcn_r (the whole foot), the same on the
left, and torso (head, arms and the trunk above the navel). Coordinates (21): ground_pelvis
(pelvis_tilt, pelvis_list, pelvis_rotation [rad]; pelvis_tx, pelvis_ty, pelvis_tz [m]), hip
(flexion, adduction, rotation), knee, ankle and subtalar angles per side, and the back
(lumbar_extension, lumbar_bending, lumbar_rotation). Every joint is a CustomJoint whose
rotations are applied body-fixed in the order written, about the axes written.

Sources
-------
* Segment masses, centre-of-mass positions and radii of gyration, and the segment lengths
  with their reference statures (1741 mm male, 1735 mm female): P. de Leva, "Adjustments to
  Zatsiorsky-Seluyanov's segment inertia parameters", Journal of Biomechanics 29(9),
  1223-1230, 1996, Table 4 (head VERT-CERV; trunk split into upper, middle and lower parts).
  The "sagittal" radius is taken about the antero-posterior axis (X), the "transverse" one
  about the medio-lateral axis (Z) and the "longitudinal" one about the long axis (Y; X for
  the foot): with this reading the trunk's frontal-plane moment exceeds its sagittal one and
  the head's sagittal moment exceeds its frontal one, as their shapes require. Mass
  fractions are normalised to sum to one (the female table sums to 0.9999).
* Heights of the ankle joint (0.039 H) and shoulder joint (0.818 H) above the floor and the
  foot breadth (0.055 H): D. A. Winter, "Biomechanics and Motor Control of Human Movement",
  4th ed., Wiley, 2009, Fig. 4.1, after W. T. Dempster (1955) and R. Drillis & R. Contini,
  "Body segment parameters", Technical Report 1166-03, New York University, 1966.
* Hip joint centres from the anterior superior iliac spines: A. L. Bell, D. R. Pedersen and
  R. A. Brand, "A comparison of the accuracy of several hip center location prediction
  methods", Journal of Biomechanics 23(6), 617-621, 1990 (19 % posterior, 30 % inferior and
  36 % lateral of the inter-ASIS breadth).
* Subtalar axis inclined 42 deg from the horizontal and 23 deg medial of the foot's long axis:
  V. T. Inman, "The Joints of the Ankle", Williams & Wilkins, 1976; ankle axis tilted down
  laterally by 8 deg and posteriorly by 6 deg after the same source.
* Coordinate ranges: American Academy of Orthopaedic Surgeons, "Joint Motion: Method of
  Measuring and Recording", 1965 (as tabulated by W. B. Greene and J. D. Heckman, "The
  Clinical Measurement of Joint Motion", AAOS, 1994).

Modelling choices (no table gives them): inter-ASIS breadth 0.14 H; biacromial half
breadth 0.115 H with the shoulder joint 0.10 H from the midline; the ankle centre 0.23 foot
lengths in front of the heel; the subtalar centre 0.10 foot lengths behind and 0.45 ankle
heights below the ankle centre; the talus carries 10 % of the foot mass as a sphere of
radius 0.1 foot lengths; the foot's centre of mass lies half an ankle height above the
floor; the trunk segments, head and hanging arms are stacked on the vertical through the
hip-joint midpoint; markers sit on bony landmarks at distances scaled with height. Each foot
carries four ContactSphere objects (heel, first and fifth metatarsal heads, toe) touching the
floor (a ContactHalfSpace) in the default pose, where ``pelvis_ty`` puts them there.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from diffbio._errors import ModelError

__all__ = ["DEFAULT_COORDINATES", "default_model_xml"]

# de Leva (1996) Table 4: mass fraction, length [mm], CoM from the proximal (first) end as a
# fraction of length, radii of gyration (sagittal, transverse, longitudinal) / length.
_DE_LEVA: dict[str, dict[str, tuple[float, float, float, float, float, float]]] = {
    "male": {
        "head": (0.0694, 242.9, 0.5002, 0.303, 0.315, 0.261),  # VERT-CERV
        "upper_trunk": (0.1596, 170.7, 0.2999, 0.716, 0.454, 0.659),  # SUPR-XYPH
        "middle_trunk": (0.1633, 215.5, 0.4502, 0.482, 0.383, 0.468),  # XYPH-OMPH
        "lower_trunk": (0.1117, 145.7, 0.6115, 0.615, 0.551, 0.587),  # OMPH-MIDH
        "upper_arm": (0.0271, 281.7, 0.5772, 0.285, 0.269, 0.158),
        "forearm": (0.0162, 268.9, 0.4574, 0.276, 0.265, 0.121),
        "hand": (0.0061, 86.2, 0.7900, 0.628, 0.513, 0.401),
        "thigh": (0.1416, 422.2, 0.4095, 0.329, 0.329, 0.149),
        "shank": (0.0433, 434.0, 0.4459, 0.255, 0.249, 0.103),
        "foot": (0.0137, 258.1, 0.4415, 0.257, 0.245, 0.124),  # HEEL-TTIP
    },
    "female": {
        "head": (0.0668, 243.7, 0.4841, 0.271, 0.295, 0.261),
        "upper_trunk": (0.1545, 142.5, 0.2077, 0.746, 0.502, 0.718),
        "middle_trunk": (0.1465, 205.3, 0.4512, 0.433, 0.354, 0.415),
        "lower_trunk": (0.1247, 181.5, 0.4920, 0.433, 0.402, 0.444),
        "upper_arm": (0.0255, 275.1, 0.5754, 0.278, 0.260, 0.148),
        "forearm": (0.0138, 264.3, 0.4559, 0.261, 0.257, 0.094),
        "hand": (0.0056, 78.0, 0.7474, 0.531, 0.454, 0.335),
        "thigh": (0.1478, 368.5, 0.3612, 0.369, 0.364, 0.162),
        "shank": (0.0481, 432.3, 0.4416, 0.271, 0.267, 0.093),
        "foot": (0.0129, 228.3, 0.4014, 0.299, 0.279, 0.139),
    },
}
_STATURE_MM = {"male": 1741.0, "female": 1735.0}
_SEGMENT_COUNT = {"head": 1, "upper_trunk": 1, "middle_trunk": 1, "lower_trunk": 1}  # else 2

_D = math.pi / 180.0
# name, (lower, upper) [deg, or m for translations], default (0 unless given)
_RANGES: dict[str, tuple[float, float]] = {
    "pelvis_tilt": (-90.0, 90.0),
    "pelvis_list": (-90.0, 90.0),
    "pelvis_rotation": (-90.0, 90.0),
    "pelvis_tx": (-50.0, 50.0),
    "pelvis_ty": (-1.0, 3.0),
    "pelvis_tz": (-10.0, 10.0),
    "hip_flexion": (-30.0, 120.0),
    "hip_adduction": (-45.0, 30.0),
    "hip_rotation": (-45.0, 45.0),
    "knee_angle": (-135.0, 10.0),
    "ankle_angle": (-50.0, 20.0),
    "subtalar_angle": (-15.0, 35.0),
    "lumbar_extension": (-80.0, 25.0),
    "lumbar_bending": (-35.0, 35.0),
    "lumbar_rotation": (-45.0, 45.0),
}

DEFAULT_COORDINATES: tuple[str, ...] = (
    "pelvis_tilt",
    "pelvis_list",
    "pelvis_rotation",
    "pelvis_tx",
    "pelvis_ty",
    "pelvis_tz",
    *(f"{c}_r" for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle")),
    "ankle_angle_r",
    "subtalar_angle_r",
    *(f"{c}_l" for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle")),
    "ankle_angle_l",
    "subtalar_angle_l",
    "lumbar_extension",
    "lumbar_bending",
    "lumbar_rotation",
)
"""Names of the default model's 21 coordinates, in model order."""


@dataclass
class _Body:
    name: str
    mass: float
    com: np.ndarray
    inertia: np.ndarray  # (3, 3) about the CoM, body axes


@dataclass
class _Joint:
    name: str
    parent: str
    child: str
    location_in_parent: np.ndarray
    rotations: list[tuple[str | None, np.ndarray]]  # (coordinate or None, axis) x 3
    translations: list[str | None] = field(default_factory=lambda: [None, None, None])


def _segment(sex: str, key: str, height: float, mass: float) -> tuple[float, float, tuple]:
    """(mass [kg], length [m], (com fraction, r_sag, r_trans, r_long)) of one segment."""
    table = _DE_LEVA[sex]
    total = sum(v[0] * _SEGMENT_COUNT.get(k, 2) for k, v in table.items())
    frac, length_mm, com, r_sag, r_trans, r_long = table[key]
    return mass * frac / total, height * length_mm / _STATURE_MM[sex], (com, r_sag, r_trans, r_long)


def _inertia(m: float, length: float, radii: tuple[float, float, float]) -> np.ndarray:
    """Diagonal inertia from radii of gyration (about X, Y, Z) as fractions of ``length``."""
    return np.diag([m * (r * length) ** 2 for r in radii])


def _shift(inertia: np.ndarray, m: float, d: np.ndarray) -> np.ndarray:
    """Parallel-axis theorem: inertia about a point displaced by ``d`` from the CoM."""
    return inertia + m * (float(d @ d) * np.eye(3) - np.outer(d, d))


def _axis(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return a / np.linalg.norm(a)


def _mirror_point(p: np.ndarray) -> np.ndarray:
    return p * np.array([1.0, 1.0, -1.0])


def _mirror_axis(a: np.ndarray) -> np.ndarray:
    """Left-side rotation axis: the mirror image, negated, so that signs mean the same."""
    return -_mirror_point(a)


def _build(height: float, mass: float, sex: str):
    H = height
    seg = {k: _segment(sex, k, H, mass) for k in _DE_LEVA[sex]}
    m_th, L_th, (c_th, *r_th) = seg["thigh"]
    m_sh, L_sh, (c_sh, *r_sh) = seg["shank"]
    m_ft, L_ft, (c_ft, rs_ft, rt_ft, rl_ft) = seg["foot"]
    m_lp, L_lp, (c_lp, *r_lp) = seg["lower_trunk"]
    h_a = 0.039 * H  # ankle centre above the floor
    w_asis = 0.14 * H
    foot_w = 0.055 * H
    hjc = np.array([-0.19 * w_asis, -0.30 * w_asis, 0.36 * w_asis])  # right, pelvis frame
    pelvis_ty = h_a + L_sh + L_th + 0.30 * w_asis

    bodies: list[_Body] = []
    markers: list[tuple[str, str, np.ndarray]] = []
    spheres: list[tuple[str, str, np.ndarray, float]] = []

    # Pelvis = de Leva lower trunk (OMPH-MIDH); origin at the mid-point of the ASIS.
    back = np.array([hjc[0], hjc[1] + L_lp, 0.0])
    # radii (sagittal->X, longitudinal->Y, transverse->Z)
    r_lp_xyz = (r_lp[0], r_lp[2], r_lp[1])
    bodies.append(
        _Body(
            "pelvis",
            m_lp,
            np.array([hjc[0], back[1] - c_lp * L_lp, 0.0]),
            _inertia(m_lp, L_lp, r_lp_xyz),
        )
    )
    for s, sign in (("R", 1.0), ("L", -1.0)):
        markers.append((f"{s}ASI", "pelvis", np.array([0.0, 0.0, sign * 0.5 * w_asis])))
        markers.append(
            (f"{s}PSI", "pelvis", np.array([-0.65 * w_asis, 0.12 * w_asis, sign * 0.18 * w_asis]))
        )

    # Torso: middle and upper trunk, head and both arms, hanging, origin at the back joint.
    y_back = pelvis_ty + back[1]  # height of the back joint above the floor (default pose)
    parts: list[tuple[float, np.ndarray, np.ndarray]] = []
    m_mp, L_mp, (c_mp, *r_mp) = seg["middle_trunk"]
    parts.append(
        (
            m_mp,
            np.array([0, L_mp * (1 - c_mp), 0.0]),
            _inertia(m_mp, L_mp, (r_mp[0], r_mp[2], r_mp[1])),
        )
    )
    m_up, L_up, (c_up, *r_up) = seg["upper_trunk"]
    parts.append(
        (
            m_up,
            np.array([0, L_mp + L_up * (1 - c_up), 0.0]),
            _inertia(m_up, L_up, (r_up[0], r_up[2], r_up[1])),
        )
    )
    m_hd, L_hd, (c_hd, *r_hd) = seg["head"]
    parts.append(
        (
            m_hd,
            np.array([0, H - y_back - c_hd * L_hd, 0.0]),
            _inertia(m_hd, L_hd, (r_hd[0], r_hd[2], r_hd[1])),
        )
    )
    y_sjc = 0.818 * H - y_back
    for sign in (1.0, -1.0):
        y = y_sjc
        for key in ("upper_arm", "forearm", "hand"):
            m, L, (c, *r) = seg[key]
            parts.append(
                (m, np.array([0.0, y - c * L, sign * 0.10 * H]), _inertia(m, L, (r[0], r[2], r[1])))
            )
            y -= L
    m_to = sum(p[0] for p in parts)
    com_to = sum(p[0] * p[1] for p in parts) / m_to
    inertia_to = sum(_shift(p[2], p[0], p[1] - com_to) for p in parts)
    bodies.append(_Body("torso", m_to, com_to, inertia_to))
    y_supr = L_mp + L_up
    markers += [
        ("C7", "torso", np.array([-0.045 * H, H - y_back - L_hd, 0.0])),
        ("CLAV", "torso", np.array([0.04 * H, y_supr, 0.0])),
        ("STRN", "torso", np.array([0.07 * H, L_mp, 0.0])),
        ("RSHO", "torso", np.array([0.0, y_sjc + 0.02 * H, 0.115 * H])),
        ("LSHO", "torso", np.array([0.0, y_sjc + 0.02 * H, -0.115 * H])),
    ]

    # Legs (right side authored, left side mirrored).
    heel_x = -0.23 * L_ft
    subtalar = np.array([-0.10 * L_ft, -0.45 * h_a, 0.0])  # in talus (origin: ankle centre)
    ankle_axis = _axis((-math.sin(6 * _D), -math.sin(8 * _D), 1.0))
    subtalar_axis = _axis(
        (
            math.cos(42 * _D) * math.cos(23 * _D),
            math.sin(42 * _D),
            -math.cos(42 * _D) * math.sin(23 * _D),
        )
    )

    def in_calcn(x_from_heel: float, height_above_floor: float, z: float) -> np.ndarray:
        return np.array([heel_x + x_from_heel, height_above_floor - h_a, z]) - subtalar

    joints: list[_Joint] = [
        _Joint(
            "ground_pelvis",
            "ground",
            "pelvis",
            np.zeros(3),
            [
                ("pelvis_tilt", _axis((0, 0, 1))),
                ("pelvis_list", _axis((1, 0, 0))),
                ("pelvis_rotation", _axis((0, 1, 0))),
            ],
            ["pelvis_tx", "pelvis_ty", "pelvis_tz"],
        )
    ]
    m_ta = 0.1 * m_ft
    r_ta = 0.1 * L_ft
    for side, sign in (("r", 1.0), ("l", -1.0)):
        S = side.upper()

        def P(p: np.ndarray, sign: float = sign) -> np.ndarray:
            return p if sign > 0 else _mirror_point(p)

        def A(a: np.ndarray, sign: float = sign) -> np.ndarray:
            return a if sign > 0 else _mirror_axis(a)

        z, x, y = _axis((0, 0, 1)), _axis((1, 0, 0)), _axis((0, 1, 0))
        bodies.append(
            _Body(
                f"femur_{side}",
                m_th,
                np.array([0, -c_th * L_th, 0.0]),
                _inertia(m_th, L_th, (r_th[0], r_th[2], r_th[1])),
            )
        )
        bodies.append(
            _Body(
                f"tibia_{side}",
                m_sh,
                np.array([0, -c_sh * L_sh, 0.0]),
                _inertia(m_sh, L_sh, (r_sh[0], r_sh[2], r_sh[1])),
            )
        )
        bodies.append(_Body(f"talus_{side}", m_ta, np.zeros(3), np.eye(3) * 0.4 * m_ta * r_ta**2))
        com_ft = in_calcn(c_ft * L_ft, 0.5 * h_a, 0.0)
        bodies.append(
            _Body(
                f"calcn_{side}",
                m_ft - m_ta,
                P(com_ft),
                _inertia(m_ft - m_ta, L_ft, (rl_ft, rs_ft, rt_ft)),
            )
        )
        joints += [
            _Joint(
                f"hip_{side}",
                "pelvis",
                f"femur_{side}",
                P(hjc),
                [
                    (f"hip_flexion_{side}", A(z)),
                    (f"hip_adduction_{side}", A(x)),
                    (f"hip_rotation_{side}", A(y)),
                ],
            ),
            _Joint(
                f"knee_{side}",
                f"femur_{side}",
                f"tibia_{side}",
                np.array([0, -L_th, 0.0]),
                [(f"knee_angle_{side}", A(z)), (None, A(x)), (None, A(y))],
            ),
            _Joint(
                f"ankle_{side}",
                f"tibia_{side}",
                f"talus_{side}",
                np.array([0, -L_sh, 0.0]),
                [(f"ankle_angle_{side}", A(ankle_axis)), (None, A(x)), (None, A(y))],
            ),
            _Joint(
                f"subtalar_{side}",
                f"talus_{side}",
                f"calcn_{side}",
                P(subtalar),
                [(f"subtalar_angle_{side}", A(subtalar_axis)), (None, A(y)), (None, A(z))],
            ),
        ]
        markers += [
            (f"{S}THI", f"femur_{side}", P(np.array([0.0, -0.5 * L_th, 0.045 * H]))),
            (f"{S}THA", f"femur_{side}", P(np.array([0.045 * H, -0.3 * L_th, 0.01 * H]))),
            (f"{S}KNE", f"femur_{side}", P(np.array([0.0, -L_th, 0.028 * H]))),
            (f"{S}KNM", f"femur_{side}", P(np.array([0.0, -L_th, -0.028 * H]))),
            (f"{S}TTB", f"tibia_{side}", P(np.array([0.025 * H, -0.15 * L_sh, 0.003 * H]))),
            (f"{S}TIB", f"tibia_{side}", P(np.array([0.0, -0.5 * L_sh, 0.03 * H]))),
            (f"{S}ANK", f"tibia_{side}", P(np.array([-0.005 * H, -L_sh, 0.02 * H]))),
            (f"{S}ANM", f"tibia_{side}", P(np.array([0.003 * H, -L_sh + 0.006 * H, -0.02 * H]))),
            (f"{S}HEE", f"calcn_{side}", P(in_calcn(-0.01 * L_ft, 0.5 * h_a, 0.0))),
            (f"{S}TOE", f"calcn_{side}", P(in_calcn(0.78 * L_ft, 0.45 * h_a, 0.0))),
            (f"{S}MT1", f"calcn_{side}", P(in_calcn(0.74 * L_ft, 0.3 * h_a, -0.45 * foot_w))),
            (f"{S}MT5", f"calcn_{side}", P(in_calcn(0.64 * L_ft, 0.3 * h_a, 0.5 * foot_w))),
        ]
        r_heel, r_mt, r_toe = 0.35 * h_a, 0.3 * h_a, 0.2 * h_a
        spheres += [
            (f"heel_{side}", f"calcn_{side}", P(in_calcn(r_heel, r_heel, 0.0)), r_heel),
            (f"mt1_{side}", f"calcn_{side}", P(in_calcn(0.72 * L_ft, r_mt, -0.3 * foot_w)), r_mt),
            (f"mt5_{side}", f"calcn_{side}", P(in_calcn(0.64 * L_ft, r_mt, 0.35 * foot_w)), r_mt),
            (f"toe_{side}", f"calcn_{side}", P(in_calcn(L_ft - r_toe, r_toe, 0.0)), r_toe),
        ]
    joints.append(
        _Joint(
            "back",
            "pelvis",
            "torso",
            back,
            [
                ("lumbar_extension", _axis((0, 0, 1))),
                ("lumbar_bending", _axis((1, 0, 0))),
                ("lumbar_rotation", _axis((0, 1, 0))),
            ],
        )
    )
    return bodies, joints, markers, spheres, pelvis_ty


def _fmt(v) -> str:
    return " ".join(repr(float(x)) for x in np.atleast_1d(v))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    e = ET.SubElement(parent, tag, attrib)
    if text is not None:
        e.text = text
    return e


def _offset_frame(frames: ET.Element, name: str, body: str, translation: np.ndarray) -> None:
    f = _sub(frames, "PhysicalOffsetFrame", name=name)
    _sub(f, "socket_parent", "/ground" if body == "ground" else f"/bodyset/{body}")
    _sub(f, "translation", _fmt(translation))
    _sub(f, "orientation", "0 0 0")


def _transform_axis(st: ET.Element, name: str, coordinate: str | None, axis: np.ndarray) -> None:
    ta = _sub(st, "TransformAxis", name=name)
    _sub(ta, "coordinates", coordinate or "")
    _sub(ta, "axis", _fmt(axis))
    if coordinate is None:
        fn = _sub(ta, "Constant", name="function")
        _sub(fn, "value", "0")
    else:
        fn = _sub(ta, "LinearFunction", name="function")
        _sub(fn, "coefficients", "1 0")


def default_model_xml(
    height: float = 1.75,
    mass: float = 75.0,
    *,
    name: str = "diffbio_gait",
    sex: str = "male",
    muscles: bool = True,
) -> str:
    """The default 3D gait model as an OpenSim 4.x ``.osim`` document.

    height: standing height [m]; mass: whole-body mass [kg] (the bodies' masses sum to it);
    sex: ``"male"`` or ``"female"`` (which of de Leva's tables). Lengths scale with
    ``height`` and masses with ``mass``; radii of gyration scale with the segment lengths.
    The 21 coordinates are :data:`DEFAULT_COORDINATES`, all zero by default except
    ``pelvis_ty`` [m], which stands the model on the floor (y = 0). ``muscles``: fill the
    ForceSet with the 66 lower-limb muscles (33 per leg) of :mod:`diffbio.model._default_muscles`.
    Returns the XML text.
    """
    if sex not in _DE_LEVA:
        raise ModelError(f"default model: sex must be 'male' or 'female', got {sex!r}")
    if not (math.isfinite(height) and 0.5 <= height <= 2.5):
        raise ModelError(f"default model: height must lie in [0.5, 2.5] m, got {height!r}")
    if not (math.isfinite(mass) and 5.0 <= mass <= 300.0):
        raise ModelError(f"default model: mass must lie in [5, 300] kg, got {mass!r}")
    bodies, joints, markers, spheres, pelvis_ty = _build(float(height), float(mass), sex)

    doc = ET.Element("OpenSimDocument", Version="40000")
    model = _sub(doc, "Model", name=name)
    _sub(model, "Ground", name="ground")
    _sub(model, "gravity", "0 -9.80665 0")
    _sub(
        model,
        "credits",
        f"diffbio default gait model (height {height:g} m, mass {mass:g} kg, {sex}).",
    )
    _sub(
        model,
        "publications",
        "de Leva P. (1996) J Biomech 29(9):1223-1230; Winter D.A. (2009) Biomechanics and "
        "Motor Control of Human Movement, 4th ed.; Bell A.L. et al. (1990) J Biomech "
        "23(6):617-621; Inman V.T. (1976) The Joints of the Ankle.",
    )
    _sub(model, "length_units", "meters")
    _sub(model, "force_units", "N")
    objects = _sub(_sub(model, "BodySet", name="bodyset"), "objects")
    for b in bodies:
        e = _sub(objects, "Body", name=b.name)
        _sub(e, "mass", repr(float(b.mass)))
        _sub(e, "mass_center", _fmt(b.com))
        inertia = b.inertia
        _sub(
            e,
            "inertia",
            _fmt(
                [
                    inertia[0, 0],
                    inertia[1, 1],
                    inertia[2, 2],
                    inertia[0, 1],
                    inertia[0, 2],
                    inertia[1, 2],
                ]
            ),
        )
    objects = _sub(_sub(model, "JointSet", name="jointset"), "objects")
    for j in joints:
        e = _sub(objects, "CustomJoint", name=j.name)
        _sub(e, "socket_parent_frame", f"{j.parent}_offset")
        _sub(e, "socket_child_frame", f"{j.child}_offset")
        coords = _sub(e, "coordinates")
        for c in [c for c, _ in j.rotations] + j.translations:
            if c is None:
                continue
            base = c[:-2] if c[-2:] in ("_r", "_l") else c
            lo, hi = _RANGES[base]
            rotational = c not in ("pelvis_tx", "pelvis_ty", "pelvis_tz")
            scale = _D if rotational else 1.0
            ce = _sub(coords, "Coordinate", name=c)
            _sub(ce, "default_value", repr(pelvis_ty) if c == "pelvis_ty" else "0")
            _sub(ce, "default_speed_value", "0")
            _sub(ce, "range", _fmt([lo * scale, hi * scale]))
            _sub(ce, "clamped", "false")
            _sub(ce, "locked", "false")
        frames = _sub(e, "frames")
        _offset_frame(frames, f"{j.parent}_offset", j.parent, j.location_in_parent)
        _offset_frame(frames, f"{j.child}_offset", j.child, np.zeros(3))
        st = _sub(e, "SpatialTransform")
        for i, (c, a) in enumerate(j.rotations):
            _transform_axis(st, f"rotation{i + 1}", c, a)
        for i, c in enumerate(j.translations):
            _transform_axis(st, f"translation{i + 1}", c, np.eye(3)[i])
    for set_name in ("ControllerSet", "ConstraintSet", "ForceSet"):
        _sub(_sub(model, set_name, name=set_name.lower()), "objects")
    if muscles:
        from diffbio.model._default_muscles import add_default_muscles

        foot_length = _segment(sex, "foot", float(height), float(mass))[1]
        forces = model.find("ForceSet/objects")
        add_default_muscles(forces, joints, float(height), float(mass), foot_length)
    objects = _sub(_sub(model, "MarkerSet", name="markerset"), "objects")
    for mname, body, loc in markers:
        e = _sub(objects, "Marker", name=mname)
        _sub(e, "socket_parent_frame", f"/bodyset/{body}")
        _sub(e, "location", _fmt(loc))
        _sub(e, "fixed", "false")
    objects = _sub(_sub(model, "ContactGeometrySet", name="contactgeometryset"), "objects")
    floor = _sub(objects, "ContactHalfSpace", name="floor")
    _sub(floor, "socket_frame", "/ground")
    _sub(floor, "location", "0 0 0")
    _sub(floor, "orientation", _fmt([0.0, 0.0, -math.pi / 2]))
    for sname, body, loc, radius in spheres:
        e = _sub(objects, "ContactSphere", name=sname)
        _sub(e, "socket_frame", f"/bodyset/{body}")
        _sub(e, "location", _fmt(loc))
        _sub(e, "orientation", "0 0 0")
        _sub(e, "radius", repr(float(radius)))
    ET.indent(doc, space="\t")
    return '<?xml version="1.0" encoding="UTF-8" ?>\n' + ET.tostring(doc, encoding="unicode") + "\n"
