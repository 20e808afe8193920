"""Muscles of the built-in default model: 33 lower-limb muscles per leg (66 in all).

:func:`add_default_muscles` fills the default model's ``<ForceSet>`` with
``DeGrooteFregly2016Muscle`` elements whose ``GeometryPath`` is a chain of plain
``PathPoint`` objects (no wrap surfaces, no conditional or moving points), so the path length
is the sum of straight segments and OpenSim's and diffbio's moment arms agree exactly.

Attachment points
-----------------
Authored in this module for a reference subject (male, 1.75 m, the default model's frames:
X forward, Y up, Z to the right; pelvis origin midway between the anterior superior iliac
spines, femur origin at the hip centre, tibia origin at the knee centre, foot points
relative to the ankle centre), placed at the bony landmarks named in the anatomy of
S. Standring (ed.), "Gray's Anatomy", 41st ed., Elsevier, 2016, and at distances from the
joint centres of the order of those of S. L. Delp, J. P. Loan, M. G. Hoy, F. E. Zajac,
E. L. Topp and J. M. Rosen, "An interactive graphics-based model of the lower extremity to
study orthopaedic surgical procedures", IEEE Trans. Biomed. Eng. 37(8), 757-767, 1990.
Points scale with their segment: pelvis points with the inter-ASIS breadth, femur and tibia
points with the thigh and shank lengths, foot points with the foot length (X, Z) and the
ankle height (Y). Muscles that wrap over bone are given via points instead of wrap surfaces:
the quadriceps run over a "patella" via point fixed on the tibia 5 cm in front of and 3 cm
above the knee centre (so that the knee-extension moment arm stays near 5 cm over the gait
range, as measured by Buford et al. 1997, IEEE Trans. Rehabil. Eng. 5(4), 367-379); the
triceps surae run over an Achilles via point behind the distal tibia (moment arm 4-6 cm,
C. N. Maganaris, V. Baltzopoulos and A. J. Sargeant, J. Physiol. 510(3), 977-985, 1998).

Architecture
------------
Optimal fibre length, pennation at optimal length and physiological cross-sectional area
(PCSA): S. R. Ward, C. M. Eng, L. H. Smallwood and R. L. Lieber, "Are current measurements of
lower extremity muscle architecture accurate?", Clin. Orthop. Relat. Res. 467(4),
1074-1082, 2009, Table 1, rounded. (These values were entered without the table at hand
and have not yet been proof-read against it: treat them as of the order of Ward et al. until
that check is recorded here.) Gluteus minimus and tensor fasciae latae are absent
there: their values are estimates of the order of the cadaver data of J. A. Friederich and
R. A. Brand, "Muscle fiber architecture in the human lower limb", J. Biomech. 23(1),
91-95, 1990 (not a transcription of that table). Muscles that
are split into parts (gluteus maximus and medius in three, adductor magnus in two) share
the PCSA. Maximum isometric force = PCSA x 61 N/cm^2 (the specific tension of E. M. Arnold,
S. R. Ward, R. L. Lieber and S. L. Delp, "A model of the lower limb for analysis of human
movement", Ann. Biomed. Eng. 38(2), 269-279, 2010) x ``YOUNG_ADULT_STRENGTH``, scaled with
body mass (muscle volume
grows with mass x height, H. E. Handsfield et al., J. Biomech. 47(3), 631-638, 2014, and
fibre length with height). Optimal fibre lengths scale with height. Maximum contraction
velocity 10 optimal lengths/s.

``YOUNG_ADULT_STRENGTH`` = 1.94: Ward et al.'s PCSA come from 21 cadavers of mean age 83
and are about half those of young adults. A. Rajagopal, C. L. Dembia, M. S. DeMers,
D. D. Delp, J. L. Hicks and S. L. Delp, "Full-body musculoskeletal model for muscle-driven
simulation of human gait", IEEE Trans. Biomed. Eng. 63(10), 2068-2079, 2016, derive their
maximum isometric forces (60 N/cm^2) from the MRI muscle volumes of 24 young adults
(Handsfield et al. 2014) for a 75.3 kg subject instead; the median, over the 28 muscles of
``_ARCH``, of the ratio of their force to ``PCSA x 61 N/cm^2`` is 1.94 (range 1.3 for
gluteus medius to 3.0 for psoas; parts summed where the models split a muscle differently).
Without it the default model is too weak for normal walking: static optimization of the
synthetic walk pinned the hip flexors, gluteus medius and gastrocnemius at full activation.

Tendon slack length (no table gives it for this geometry): chosen, as Arnold et al. (2010)
chose theirs, so that with a rigid tendon each muscle's fibres are at ``_NEUTRAL_FIBER``
optimal lengths (1.0 unless listed there) in the anatomical posture (all coordinates zero).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from diffbio._errors import ModelError

__all__ = ["DEFAULT_MUSCLE_GROUPS", "add_default_muscles"]

SPECIFIC_TENSION = 61.0  # N/cm^2, Arnold et al. (2010)
YOUNG_ADULT_STRENGTH = 1.94  # Rajagopal et al. (2016) vs Ward et al. (2009); see above
_REF_HEIGHT, _REF_MASS = 1.75, 75.0
# Reference segment dimensions [m] of the default model at 1.75 m (male), the frame in which
# the points below are written: inter-ASIS breadth, thigh, shank, foot length, ankle height.
_REF = {"w": 0.14 * 1.75, "thigh": 0.4222 * 1.75 / 1.741, "shank": 0.434 * 1.75 / 1.741}
_REF["foot"] = 0.2581 * 1.75 / 1.741
_REF["ankle"] = 0.039 * 1.75

# Architecture: (PCSA [cm^2], optimal fibre length [cm], pennation [deg]) for the whole muscle.
_ARCH: dict[str, tuple[float, float, float]] = {
    "glmax": (33.4, 15.69, 21.9),
    "glmed": (33.8, 7.33, 20.5),
    "glmin": (12.0, 6.8, 10.0),
    "iliacus": (9.9, 10.66, 14.3),
    "psoas": (7.7, 11.69, 10.7),
    "addlong": (6.5, 10.82, 7.1),
    "addbrev": (5.0, 10.31, 6.1),
    "addmag": (20.5, 14.44, 15.5),
    "semimem": (18.4, 6.90, 15.1),
    "semiten": (4.9, 19.30, 12.9),
    "bflh": (11.3, 9.76, 11.6),
    "bfsh": (5.1, 11.03, 12.3),
    "recfem": (13.5, 7.59, 13.9),
    "vaslat": (35.1, 9.94, 18.4),
    "vasmed": (20.6, 9.68, 29.6),
    "vasint": (16.7, 9.93, 4.5),
    "sart": (1.9, 40.30, 1.3),
    "tfl": (5.0, 9.5, 3.0),
    "grac": (2.2, 22.78, 8.2),
    "gasmed": (21.1, 5.10, 9.9),
    "gaslat": (9.7, 5.88, 12.0),
    "soleus": (51.8, 4.40, 28.3),
    "tibant": (10.9, 6.83, 9.6),
    "tibpost": (14.4, 3.78, 13.7),
    "perlong": (10.4, 5.08, 14.1),
    "perbrev": (4.9, 4.54, 11.5),
    "edl": (5.6, 6.93, 10.8),
    "fdl": (4.4, 4.45, 13.6),
}

# Normalised fibre length in the anatomical posture where it is not 1.0 (see the docstring).
_NEUTRAL_FIBER: dict[str, float] = {
    "gasmed": 1.2,
    "gaslat": 1.2,
    "recfem": 0.9,
    "vaslat": 0.95,
    "vasmed": 0.95,
    "vasint": 0.95,
    "semimem": 1.05,
}

# Path points (right side, reference subject): body, location [m] in that body's frame
# ("foot" points are relative to the ankle centre, in the talus frame at zero angles, and
# are attached to calcn). Keys: muscle name -> (architecture key, fraction of PCSA, points).
_Pt = tuple[str, tuple[float, float, float]]
_IT = (-0.105, -0.122, 0.062)  # ischial tuberosity (pelvis)
_PATELLA = (0.050, 0.030, 0.0)  # quadriceps via point (tibia)
_TUBEROSITY = (0.040, -0.070, 0.003)  # tibial tuberosity (tibia)
_ACHILLES = (-0.046, -0.376, 0.0)  # Achilles tendon behind the distal tibia (tibia)
_CALCANEUS = (-0.052, -0.033, 0.0)  # calcaneal tuberosity (foot)
_PATHS: dict[str, tuple[str, float, tuple[_Pt, ...]]] = {
    # --- hip extensors and abductors
    "glmax1": (
        "glmax",
        1 / 3,
        (
            ("pelvis", (-0.140, 0.030, 0.068)),
            ("femur", (-0.045, -0.040, 0.078)),
            ("femur", (-0.022, -0.100, 0.050)),
        ),
    ),
    "glmax2": (
        "glmax",
        1 / 3,
        (
            ("pelvis", (-0.165, -0.020, 0.040)),
            ("femur", (-0.048, -0.055, 0.070)),
            ("femur", (-0.020, -0.120, 0.045)),
        ),
    ),
    "glmax3": (
        "glmax",
        1 / 3,
        (
            ("pelvis", (-0.168, -0.090, 0.018)),
            ("pelvis", (-0.125, -0.120, 0.060)),
            ("femur", (-0.040, -0.075, 0.060)),
            ("femur", (-0.015, -0.140, 0.040)),
        ),
    ),
    "glmed1": (
        "glmed",
        1 / 3,
        (("pelvis", (-0.030, 0.025, 0.125)), ("femur", (-0.005, -0.008, 0.072))),
    ),
    "glmed2": (
        "glmed",
        1 / 3,
        (("pelvis", (-0.090, 0.040, 0.115)), ("femur", (-0.012, -0.008, 0.072))),
    ),
    "glmed3": (
        "glmed",
        1 / 3,
        (("pelvis", (-0.135, 0.010, 0.090)), ("femur", (-0.022, -0.010, 0.066))),
    ),
    "glmin": (
        "glmin",
        1.0,
        (("pelvis", (-0.065, 0.000, 0.110)), ("femur", (0.006, -0.010, 0.066))),
    ),
    # --- hip flexors
    "iliacus": (
        "iliacus",
        1.0,
        (
            ("pelvis", (-0.040, 0.020, 0.078)),
            ("pelvis", (-0.006, -0.070, 0.082)),
            ("femur", (-0.008, -0.058, 0.010)),
        ),
    ),
    "psoas": (
        "psoas",
        1.0,
        (
            ("pelvis", (-0.055, 0.060, 0.030)),
            ("pelvis", (-0.008, -0.066, 0.076)),
            ("femur", (-0.010, -0.056, 0.008)),
        ),
    ),
    "recfem": (
        "recfem",
        1.0,
        (("pelvis", (-0.010, -0.040, 0.105)), ("tibia", _PATELLA), ("tibia", _TUBEROSITY)),
    ),
    "sart": (
        "sart",
        1.0,
        (
            ("pelvis", (0.000, -0.005, 0.120)),
            ("femur", (-0.012, -0.360, -0.045)),
            ("tibia", (-0.025, -0.030, -0.040)),
            ("tibia", (0.005, -0.075, -0.025)),
        ),
    ),
    "tfl": (
        "tfl",
        1.0,
        (
            ("pelvis", (-0.012, 0.000, 0.130)),
            ("femur", (0.018, -0.120, 0.068)),
            ("femur", (0.004, -0.390, 0.046)),
            ("tibia", (0.018, -0.040, 0.036)),
        ),
    ),
    # --- hip adductors
    "addlong": (
        "addlong",
        1.0,
        (("pelvis", (-0.008, -0.095, 0.022)), ("femur", (-0.010, -0.200, 0.022))),
    ),
    "addbrev": (
        "addbrev",
        1.0,
        (("pelvis", (-0.015, -0.105, 0.030)), ("femur", (-0.006, -0.120, 0.030))),
    ),
    "addmag1": (
        "addmag",
        2 / 3,
        (("pelvis", (-0.070, -0.125, 0.045)), ("femur", (-0.010, -0.220, 0.024))),
    ),
    "addmag2": (
        "addmag",
        1 / 3,
        (("pelvis", _IT), ("femur", (-0.008, -0.385, -0.030))),
    ),
    "grac": (
        "grac",
        1.0,
        (
            ("pelvis", (-0.020, -0.110, 0.020)),
            ("tibia", (-0.025, -0.035, -0.035)),
            ("tibia", (0.005, -0.080, -0.020)),
        ),
    ),
    # --- hamstrings
    "semimem": ("semimem", 1.0, (("pelvis", _IT), ("tibia", (-0.030, -0.040, -0.020)))),
    "semiten": (
        "semiten",
        1.0,
        (
            ("pelvis", (-0.107, -0.125, 0.058)),
            ("tibia", (-0.032, -0.050, -0.025)),
            ("tibia", (0.002, -0.078, -0.020)),
        ),
    ),
    "bflh": (
        "bflh",
        1.0,
        (("pelvis", (-0.107, -0.120, 0.066)), ("tibia", (-0.025, -0.040, 0.035))),
    ),
    "bfsh": ("bfsh", 1.0, (("femur", (-0.012, -0.250, 0.025)), ("tibia", (-0.027, -0.042, 0.035)))),
    # --- knee extensors
    "vaslat": (
        "vaslat",
        1.0,
        (("femur", (0.022, -0.200, 0.038)), ("tibia", _PATELLA), ("tibia", _TUBEROSITY)),
    ),
    "vasmed": (
        "vasmed",
        1.0,
        (("femur", (0.015, -0.220, -0.008)), ("tibia", _PATELLA), ("tibia", _TUBEROSITY)),
    ),
    "vasint": (
        "vasint",
        1.0,
        (("femur", (0.030, -0.210, 0.018)), ("tibia", _PATELLA), ("tibia", _TUBEROSITY)),
    ),
    # --- plantarflexors
    "gasmed": (
        "gasmed",
        1.0,
        (
            ("femur", (-0.016, -0.410, -0.025)),
            ("tibia", (-0.045, -0.376, -0.004)),
            ("foot", (-0.052, -0.033, -0.004)),
        ),
    ),
    "gaslat": (
        "gaslat",
        1.0,
        (
            ("femur", (-0.016, -0.410, 0.027)),
            ("tibia", (-0.045, -0.376, 0.004)),
            ("foot", (-0.052, -0.033, 0.004)),
        ),
    ),
    "soleus": (
        "soleus",
        1.0,
        (("tibia", (-0.022, -0.130, 0.012)), ("tibia", _ACHILLES), ("foot", _CALCANEUS)),
    ),
    "tibpost": (
        "tibpost",
        1.0,
        (
            ("tibia", (-0.012, -0.140, 0.002)),
            ("tibia", (-0.026, -0.446, -0.024)),
            ("foot", (0.005, -0.036, -0.030)),
            ("foot", (0.036, -0.040, -0.030)),
        ),
    ),
    "perlong": (
        "perlong",
        1.0,
        (
            ("tibia", (-0.008, -0.050, 0.040)),
            ("tibia", (-0.026, -0.445, 0.030)),
            ("foot", (-0.008, -0.043, 0.036)),
            ("foot", (0.030, -0.058, 0.025)),
            ("foot", (0.085, -0.055, -0.012)),
        ),
    ),
    "perbrev": (
        "perbrev",
        1.0,
        (
            ("tibia", (-0.010, -0.230, 0.035)),
            ("tibia", (-0.024, -0.442, 0.031)),
            ("foot", (-0.006, -0.040, 0.037)),
            ("foot", (0.070, -0.050, 0.045)),
        ),
    ),
    # --- dorsiflexors and toe flexors
    "tibant": (
        "tibant",
        1.0,
        (
            ("tibia", (0.020, -0.160, 0.015)),
            ("tibia", (0.032, -0.400, -0.022)),
            ("foot", (0.075, -0.042, -0.050)),
        ),
    ),
    "edl": (
        "edl",
        1.0,
        (
            ("tibia", (0.005, -0.100, 0.030)),
            ("tibia", (0.030, -0.405, 0.010)),
            ("foot", (0.165, -0.053, 0.015)),
        ),
    ),
    "fdl": (
        "fdl",
        1.0,
        (
            ("tibia", (-0.012, -0.180, -0.010)),
            ("tibia", (-0.022, -0.442, -0.020)),
            ("foot", (0.000, -0.042, -0.025)),
            ("foot", (0.160, -0.062, 0.000)),
        ),
    ),
}

DEFAULT_MUSCLE_GROUPS: dict[str, tuple[str, ...]] = {
    "hip_extensors": ("glmax1", "glmax2", "glmax3", "semimem", "semiten", "bflh", "addmag2"),
    "hip_abductors": ("glmed1", "glmed2", "glmed3", "glmin"),
    "hip_flexors": ("iliacus", "psoas", "recfem", "sart", "tfl"),
    "hip_adductors": ("addlong", "addbrev", "addmag1", "addmag2", "grac"),
    "knee_extensors": ("recfem", "vaslat", "vasmed", "vasint"),
    "knee_flexors": ("semimem", "semiten", "bflh", "bfsh", "gasmed", "gaslat", "grac", "sart"),
    "plantarflexors": ("gasmed", "gaslat", "soleus", "tibpost", "perlong", "perbrev", "fdl"),
    "dorsiflexors": ("tibant", "edl"),
}
"""Muscle names (without the ``_r`` / ``_l`` suffix) by their main action."""


@dataclass(frozen=True)
class _Frames:
    """The default model's segment dimensions [m] and body origins in the anatomical posture
    (all coordinates zero), expressed in the pelvis frame, for the right side."""

    w: float
    thigh: float
    shank: float
    foot: float
    ankle: float
    origin: dict[str, np.ndarray]
    subtalar: np.ndarray  # calcn origin relative to the ankle centre (talus frame)


def _frames(joints, height: float, foot_length: float) -> _Frames:
    loc = {j.name: np.asarray(j.location_in_parent, dtype=float) for j in joints}
    hjc = loc["hip_r"]
    knee, ankle, subtalar = loc["knee_r"], loc["ankle_r"], loc["subtalar_r"]
    origin = {"pelvis": np.zeros(3), "femur": hjc}
    origin["tibia"] = origin["femur"] + knee
    origin["talus"] = origin["tibia"] + ankle
    origin["calcn"] = origin["talus"] + subtalar
    return _Frames(
        w=0.14 * height,  # the default model's inter-ASIS breadth (Bell et al. 1990 frame)
        thigh=-float(knee[1]),
        shank=-float(ankle[1]),
        foot=foot_length,
        ankle=0.039 * height,  # the default model's ankle height (Winter 2009)
        origin=origin,
        subtalar=subtalar,
    )


def _scaled_point(body: str, p: tuple[float, float, float], fr: _Frames) -> tuple[str, np.ndarray]:
    """(OpenSim body base name, location in that body's frame) for the right side."""
    v = np.asarray(p, dtype=float)
    if body == "pelvis":
        return "pelvis", v * fr.w / _REF["w"]
    if body == "femur":
        return "femur", v * fr.thigh / _REF["thigh"]
    if body == "tibia":
        return "tibia", v * fr.shank / _REF["shank"]
    if body == "foot":
        s = np.array([fr.foot / _REF["foot"], fr.ankle / _REF["ankle"], fr.foot / _REF["foot"]])
        return "calcn", v * s - fr.subtalar
    raise ModelError(f"default muscles: unknown segment {body!r}")  # pragma: no cover


def _neutral_length(points: list[tuple[str, np.ndarray]], fr: _Frames) -> float:
    """Path length [m] in the anatomical posture (every joint rotation zero)."""
    xs = [fr.origin[b] + loc for b, loc in points]
    return float(sum(np.linalg.norm(b - a) for a, b in zip(xs[:-1], xs[1:])))


@dataclass(frozen=True)
class DefaultMuscle:
    """One authored muscle (right side; the left mirrors it)."""

    name: str
    points: tuple[tuple[str, np.ndarray], ...]
    max_isometric_force: float
    optimal_fiber_length: float
    tendon_slack_length: float
    pennation_angle_at_optimal: float


def default_muscles(joints, height: float, mass: float, foot_length: float) -> list[DefaultMuscle]:
    """The authored muscles for a default model built with ``joints`` (right side)."""
    fr = _frames(joints, height, foot_length)
    out = []
    for name, (arch, share, pts) in _PATHS.items():
        pcsa, lf_cm, pen_deg = _ARCH[arch]
        points = tuple(_scaled_point(b, p, fr) for b, p in pts)
        lopt = 0.01 * lf_cm * height / _REF_HEIGHT
        pen = math.radians(pen_deg)
        lmt = _neutral_length(list(points), fr)
        lam = _NEUTRAL_FIBER.get(name, 1.0)
        along = math.sqrt(max((lam * lopt) ** 2 - (lopt * math.sin(pen)) ** 2, 0.0))
        lts = lmt - along
        if lts < 0.01:
            raise ModelError(
                f"default muscles: {name}: path {lmt:.3f} m too short for fibres {lopt:.3f} m"
            )
        f0 = pcsa * share * SPECIFIC_TENSION * YOUNG_ADULT_STRENGTH * mass / _REF_MASS
        out.append(DefaultMuscle(name, points, f0, lopt, lts, pen))
    return out


def _fmt(v) -> str:
    return " ".join(repr(float(x)) for x in np.atleast_1d(v))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    e = ET.SubElement(parent, tag, attrib)
    if text is not None:
        e.text = text
    return e


def add_default_muscles(
    objects: ET.Element, joints, height: float, mass: float, foot_length: float
) -> int:
    """Append the default muscles, both sides, to a ForceSet's ``<objects>`` element.

    joints: the default model's joints (their ``name`` and ``location_in_parent`` fix the
    body origins); height [m], mass [kg]; foot_length [m] (de Leva's heel-to-toe length).
    Muscles are named ``<muscle>_r`` (all right-side muscles first, in the order of the
    authored table) then ``<muscle>_l``. Returns the number of muscles added.
    """
    muscles = default_muscles(joints, height, mass, foot_length)
    n = 0
    for side, zsign in (("r", 1.0), ("l", -1.0)):
        for m in muscles:
            name = f"{m.name}_{side}"
            e = _sub(objects, "DeGrooteFregly2016Muscle", name=name)
            _sub(e, "min_control", "0")
            _sub(e, "max_control", "1")
            gp = _sub(e, "GeometryPath", name="path")
            pts = _sub(_sub(gp, "PathPointSet"), "objects")
            for i, (body, loc) in enumerate(m.points):
                p = _sub(pts, "PathPoint", name=f"{name}-P{i + 1}")
                bname = body if body == "pelvis" else f"{body}_{side}"
                _sub(p, "socket_parent_frame", f"/bodyset/{bname}")
                _sub(p, "location", _fmt(loc * np.array([1.0, 1.0, zsign])))
            _sub(e, "max_isometric_force", repr(m.max_isometric_force))
            _sub(e, "optimal_fiber_length", repr(m.optimal_fiber_length))
            _sub(e, "tendon_slack_length", repr(m.tendon_slack_length))
            _sub(e, "pennation_angle_at_optimal", repr(m.pennation_angle_at_optimal))
            _sub(e, "max_contraction_velocity", "10")
            _sub(e, "ignore_tendon_compliance", "false")
            _sub(e, "ignore_activation_dynamics", "false")
            n += 1
    return n
