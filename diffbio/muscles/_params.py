"""Hill-type muscle parameters and their reading from an OpenSim ``.osim`` model."""

from __future__ import annotations

import enum
import math
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import Tensor

from diffbio._errors import FileFormatError, ModelError, ShapeError
from diffbio.muscles._bezier import (
    BezierCurve,
    millard_active_force_length_curve,
    millard_fiber_force_length_curve,
    millard_force_velocity_curve,
    millard_tendon_force_length_curve,
)


class MuscleCurves(enum.Enum):
    """Family of force-length / force-velocity / tendon curves."""

    DEGROOTE_FREGLY_2016 = "DeGrooteFregly2016"
    THELEN_2003 = "Thelen2003"
    MILLARD_2012 = "Millard2012"


def _tensors_to(obj, dtype, device):
    kw = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Tensor):
            v = v.to(device=device) if v.dtype == torch.bool else v.to(dtype=dtype, device=device)
        elif hasattr(v, "to") and not isinstance(v, (str, tuple, enum.Enum)):
            v = v.to(dtype=dtype, device=device)
        kw[f.name] = v
    return replace(obj, **kw)


@dataclass(frozen=True)
class DeGrooteParameters:
    """DeGrooteFregly2016 curve parameters, each (M,) [-]."""

    active_force_width_scale: Tensor
    passive_fiber_strain_at_one_norm_force: Tensor
    tendon_strain_at_one_norm_force: Tensor

    @staticmethod
    def default(m: int, dtype=torch.float64) -> DeGrooteParameters:
        """OpenSim's defaults (1.0, 0.6, 0.049) for ``m`` muscles."""
        return DeGrooteParameters(*(torch.full((m,), v, dtype=dtype) for v in (1.0, 0.6, 0.049)))

    def to(self, dtype=None, device=None) -> DeGrooteParameters:
        return _tensors_to(self, dtype, device)


@dataclass(frozen=True)
class ThelenParameters:
    """Thelen2003 curve parameters (OpenSim property names), each (M,) [-]."""

    FmaxTendonStrain: Tensor
    FmaxMuscleStrain: Tensor
    KshapeActive: Tensor
    KshapePassive: Tensor
    Af: Tensor
    Flen: Tensor
    fv_linear_extrap_threshold: Tensor

    DEFAULTS = (0.04, 0.6, 0.45, 5.0, 0.25, 1.4, 0.95)  # OpenSim 4.6 defaults

    @staticmethod
    def default(m: int, dtype=torch.float64) -> ThelenParameters:
        """OpenSim's defaults for ``m`` muscles."""
        return ThelenParameters(
            *(torch.full((m,), v, dtype=dtype) for v in ThelenParameters.DEFAULTS)
        )

    def to(self, dtype=None, device=None) -> ThelenParameters:
        return _tensors_to(self, dtype, device)


@dataclass(frozen=True)
class MillardParameters:
    """Millard2012 curves, one per muscle: control points (M, S, 6) (see :class:`BezierCurve`)."""

    active_force_length: BezierCurve
    force_velocity: BezierCurve
    fiber_force_length: BezierCurve
    tendon_force_length: BezierCurve

    @staticmethod
    def default(m: int) -> MillardParameters:
        """OpenSim's default curves for ``m`` muscles."""
        curves = (
            millard_active_force_length_curve(),
            millard_force_velocity_curve(),
            millard_fiber_force_length_curve(),
            millard_tendon_force_length_curve(),
        )
        return MillardParameters(*(BezierCurve.stack([c] * m) for c in curves))

    def to(self, dtype=None, device=None) -> MillardParameters:
        return _tensors_to(self, dtype, device)


@dataclass(frozen=True)
class MuscleParameters:
    """Parameters of M Hill-type muscles (one curve family for all of them).

    Attributes:
        max_isometric_force: (M,) [N].
        optimal_fiber_length: (M,) [m].
        tendon_slack_length: (M,) [m].
        pennation_angle_at_optimal: (M,) [rad], in [0, pi/2).
        max_contraction_velocity: (M,) [optimal fiber lengths / s].
        curves: the curve family.
        names: M muscle names (OpenSim's) or ().
        fiber_damping: (M,) [-] normalized damping (force ``F0 * damping * v_norm`` along the
            fiber; Millard2012 and DeGrooteFregly2016); zeros by default.
        ignore_tendon_compliance: (M,) bool, the ``.osim`` flag (informative: every function
            here states whether it treats the tendon as rigid).
        maximum_pennation_angle: (M,) [rad] OpenSim's ``maximum_pennation_angle`` (default
            ``acos(0.1)``), which with the curves sets :attr:`min_fiber_length`.
        curve_parameters: :class:`DeGrooteParameters`, :class:`ThelenParameters` or
            :class:`MillardParameters` matching ``curves``; OpenSim's defaults when None.

    Raises:
        ShapeError: parameters that are not all of shape (M,).
        ModelError: non-positive forces, lengths or velocities, or pennation outside [0, pi/2).
    """

    max_isometric_force: Tensor
    optimal_fiber_length: Tensor
    tendon_slack_length: Tensor
    pennation_angle_at_optimal: Tensor
    max_contraction_velocity: Tensor
    curves: MuscleCurves = MuscleCurves.DEGROOTE_FREGLY_2016
    names: tuple[str, ...] = ()
    fiber_damping: Tensor | None = None
    ignore_tendon_compliance: Tensor | None = None
    maximum_pennation_angle: Tensor | None = None
    curve_parameters: DeGrooteParameters | ThelenParameters | MillardParameters | None = field(
        default=None
    )

    def __post_init__(self) -> None:
        base = ("max_isometric_force", "optimal_fiber_length", "tendon_slack_length")
        base += ("pennation_angle_at_optimal", "max_contraction_velocity")
        f0 = torch.as_tensor(self.max_isometric_force)
        dtype = f0.dtype if f0.is_floating_point() else torch.get_default_dtype()
        for name in base:
            v = torch.as_tensor(getattr(self, name), dtype=dtype)
            object.__setattr__(self, name, v)
        m = self.max_isometric_force.shape[0] if self.max_isometric_force.dim() == 1 else -1
        for name in base:
            if getattr(self, name).shape != (m,):
                raise ShapeError(
                    f"MuscleParameters.{name}: expected shape (M,), got {tuple(getattr(self, name).shape)}"
                )
        if self.names and len(self.names) != m:
            raise ShapeError(f"MuscleParameters.names: {len(self.names)} names for {m} muscles")
        label = lambda i: self.names[i] if self.names else f"muscle {i}"  # noqa: E731
        for name in (
            "max_isometric_force",
            "optimal_fiber_length",
            "tendon_slack_length",
            "max_contraction_velocity",
        ):
            bad = torch.nonzero(~(getattr(self, name) > 0)).flatten()
            if len(bad):
                i = int(bad[0])
                raise ModelError(
                    f"{label(i)}: {name} must be positive, got {float(getattr(self, name)[i])}"
                )
        pen = self.pennation_angle_at_optimal
        bad = torch.nonzero(~((pen >= 0) & (pen < math.pi / 2))).flatten()
        if len(bad):
            i = int(bad[0])
            raise ModelError(
                f"{label(i)}: pennation_angle_at_optimal must be in [0, pi/2), got {float(pen[i])}"
            )
        if self.fiber_damping is None:
            object.__setattr__(self, "fiber_damping", torch.zeros(m, dtype=dtype))
        if self.ignore_tendon_compliance is None:
            object.__setattr__(self, "ignore_tendon_compliance", torch.zeros(m, dtype=torch.bool))
        if self.maximum_pennation_angle is None:
            object.__setattr__(
                self, "maximum_pennation_angle", torch.full((m,), math.acos(0.1), dtype=dtype)
            )
        if self.maximum_pennation_angle.shape != (m,):
            raise ShapeError("MuscleParameters: maximum_pennation_angle must be (M,)")
        if self.fiber_damping.shape != (m,) or self.ignore_tendon_compliance.shape != (m,):
            raise ShapeError(
                "MuscleParameters: fiber_damping and ignore_tendon_compliance must be (M,)"
            )
        if bool((self.fiber_damping < 0).any()):
            raise ModelError("MuscleParameters: fiber_damping must be non-negative")
        expected = {
            MuscleCurves.DEGROOTE_FREGLY_2016: DeGrooteParameters,
            MuscleCurves.THELEN_2003: ThelenParameters,
            MuscleCurves.MILLARD_2012: MillardParameters,
        }[self.curves]
        cp = self.curve_parameters
        if cp is None:
            cp = (
                expected.default(m) if expected is MillardParameters else expected.default(m, dtype)
            )
            object.__setattr__(self, "curve_parameters", cp)
        if not isinstance(cp, expected):
            raise ModelError(
                f"MuscleParameters: {self.curves} needs {expected.__name__}, got {type(cp).__name__}"
            )
        if isinstance(cp, (DeGrooteParameters, ThelenParameters)):
            for f in fields(cp):
                v = getattr(cp, f.name)
                if v.shape != (m,):
                    raise ShapeError(f"{type(cp).__name__}.{f.name}: expected shape (M,)")
                if not bool((v > 0).all()):
                    raise ModelError(f"{type(cp).__name__}.{f.name} must be positive")

    @property
    def num_muscles(self) -> int:
        """M."""
        return self.max_isometric_force.shape[0]

    @property
    def fiber_width(self) -> Tensor:
        """(M,) [m] constant-thickness pennation height ``l_opt sin(alpha_opt)``."""
        return self.optimal_fiber_length * torch.sin(self.pennation_angle_at_optimal)

    @property
    def min_fiber_length(self) -> Tensor:
        """(M,) [m] the shortest fiber length, where OpenSim clamps a slack muscle.

        Pennation: ``h / sin(maximum_pennation_angle)`` (``0.01 l_opt`` when that angle is 0);
        Millard2012 also the active force-length curve's lower end times ``l_opt``;
        DeGrooteFregly2016 its curves' lower domain end ``0.2 l_opt``.
        """
        lopt = self.optimal_fiber_length
        maxpen = self.maximum_pennation_angle.to(lopt.dtype)
        safe = torch.where(maxpen > 1e-12, torch.sin(maxpen), torch.ones_like(maxpen))
        pen = torch.where(maxpen > 1e-12, self.fiber_width / safe, 0.01 * lopt)
        if self.curves is MuscleCurves.MILLARD_2012:
            x_min = self.curve_parameters.active_force_length.x_min.to(lopt.dtype)
            return torch.maximum(pen, x_min * lopt)
        if self.curves is MuscleCurves.DEGROOTE_FREGLY_2016:
            return torch.maximum(pen, 0.2 * lopt)
        return pen

    def to(self, dtype: torch.dtype | None = None, device=None) -> MuscleParameters:
        """Copy with every tensor moved to ``dtype`` / ``device``."""
        return _tensors_to(self, dtype, device)


# --- reading an .osim ------------------------------------------------------------------------

_COMMON = (
    "max_isometric_force",
    "optimal_fiber_length",
    "tendon_slack_length",
    "pennation_angle_at_optimal",
    "max_contraction_velocity",
)
_CLASS_CURVES = {
    "Thelen2003Muscle": MuscleCurves.THELEN_2003,
    "Millard2012EquilibriumMuscle": MuscleCurves.MILLARD_2012,
    "Millard2012AccelerationMuscle": MuscleCurves.MILLARD_2012,
    "DeGrooteFregly2016Muscle": MuscleCurves.DEGROOTE_FREGLY_2016,
}
# OpenSim 4.6 defaults of the common properties where a muscle omits them.
_COMMON_DEFAULTS = {"pennation_angle_at_optimal": 0.0, "max_contraction_velocity": 10.0}


def _is_muscle(elem: ET.Element) -> bool:
    return "Muscle" in elem.tag and elem.find("max_isometric_force") is not None


def _num(elem: ET.Element, tag: str, path, default=None):
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if default is None:
            raise FileFormatError(path, f"muscle {elem.get('name')!r}: missing <{tag}>")
        return default
    try:
        return float(child.text.strip())
    except ValueError:
        raise FileFormatError(
            path, f"muscle {elem.get('name')!r}: <{tag}> is not a number: {child.text.strip()!r}"
        ) from None


def _opt_num(elem: ET.Element | None, tag: str, path):
    if elem is None:
        return None
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return None
    return _num(elem, tag, path)


def _millard_curves(elem: ET.Element, path) -> tuple[BezierCurve, ...]:
    g = lambda sub, tag: _opt_num(elem.find(sub), tag, path)  # noqa: E731
    kw = lambda sub, tags: {t: v for t in tags if (v := g(sub, t)) is not None}  # noqa: E731
    try:
        afl = millard_active_force_length_curve(
            **kw(
                "ActiveForceLengthCurve",
                (
                    "min_norm_active_fiber_length",
                    "transition_norm_fiber_length",
                    "max_norm_active_fiber_length",
                    "shallow_ascending_slope",
                    "minimum_value",
                ),
            )
        )
        fv = millard_force_velocity_curve(
            **kw(
                "ForceVelocityCurve",
                (
                    "concentric_slope_at_vmax",
                    "concentric_slope_near_vmax",
                    "isometric_slope",
                    "eccentric_slope_at_vmax",
                    "eccentric_slope_near_vmax",
                    "max_eccentric_velocity_force_multiplier",
                    "concentric_curviness",
                    "eccentric_curviness",
                ),
            )
        )
        fpe = millard_fiber_force_length_curve(
            **kw(
                "FiberForceLengthCurve",
                (
                    "strain_at_zero_force",
                    "strain_at_one_norm_force",
                    "stiffness_at_low_force",
                    "stiffness_at_one_norm_force",
                    "curviness",
                ),
            )
        )
        tfl = millard_tendon_force_length_curve(
            **kw(
                "TendonForceLengthCurve",
                (
                    "strain_at_one_norm_force",
                    "stiffness_at_one_norm_force",
                    "norm_force_at_toe_end",
                    "curviness",
                ),
            )
        )
    except ModelError as err:
        raise FileFormatError(path, f"muscle {elem.get('name')!r}: {err}") from None
    return afl, fv, fpe, tfl


def muscle_parameters_from_osim(
    path_or_xml_root: str | Path | ET.Element, names: list[str] | tuple[str, ...] | None = None
) -> MuscleParameters:
    """Read the Hill-type muscle parameters of an OpenSim model.

    Args:
        path_or_xml_root: a ``.osim`` path, or the parsed root element (then errors name no
            file).
        names: muscles to read, in this order; all muscles of the ``<ForceSet>`` when None.

    Returns:
        :class:`MuscleParameters` (float64). Thelen2003Muscle -> Thelen2003 curves,
        Millard2012EquilibriumMuscle -> Millard2012 curves from the ``.osim``'s curve
        properties, DeGrooteFregly2016Muscle -> DeGroote curves; any other muscle class
        (e.g. Schutte1993Muscle_Deprecated) keeps the five common properties and uses the
        DeGrooteFregly2016 default curves, with a warning.

    Raises:
        FileFormatError: unreadable XML, missing or malformed properties, unknown names.
        ModelError: muscles of different curve families (select them with ``names``).
    """
    if isinstance(path_or_xml_root, ET.Element):
        root, path = path_or_xml_root, None
    else:
        path = Path(path_or_xml_root)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as err:
            raise FileFormatError(path, f"cannot read the model: {err}") from None
    muscles: dict[str, ET.Element] = {}
    for force_set in root.iter("ForceSet"):
        objects = force_set.find("objects")
        for elem in objects if objects is not None else ():
            if _is_muscle(elem):
                muscles[elem.get("name", "")] = elem
    if names is None:
        names = list(muscles)
    missing = [n for n in names if n not in muscles]
    if missing:
        raise FileFormatError(path, f"no muscle named {missing[0]!r} in the <ForceSet>")
    if not names:
        raise FileFormatError(path, "the model has no muscles in its <ForceSet>")
    elems = [muscles[n] for n in names]
    families = set()
    unknown = []
    for e in elems:
        if e.tag in _CLASS_CURVES:
            families.add(_CLASS_CURVES[e.tag])
        else:
            unknown.append(e)
            families.add(MuscleCurves.DEGROOTE_FREGLY_2016)
    if len(families) > 1:
        raise ModelError(
            f"{path or '<xml>'}: muscles of different curve families "
            f"({', '.join(sorted(f.value for f in families))}); read them separately with names="
        )
    if unknown:
        warnings.warn(
            f"{path or '<xml>'}: muscle class {unknown[0].tag} ({len(unknown)} muscles) has no "
            "dedicated curves here: using the DeGrooteFregly2016 default curves",
            stacklevel=2,
        )
    curves = families.pop()
    t = lambda vals: torch.tensor(vals, dtype=torch.float64)  # noqa: E731
    common = {c: t([_num(e, c, path, _COMMON_DEFAULTS.get(c)) for e in elems]) for c in _COMMON}
    itc = torch.tensor(
        [
            (e.findtext("ignore_tendon_compliance") or "false").strip().lower() == "true"
            for e in elems
        ]
    )
    millard_damping = 0.1 if curves is MuscleCurves.MILLARD_2012 else 0.0
    maxpen = t([_num(e, "maximum_pennation_angle", path, math.acos(0.1)) for e in elems])
    damping = t(
        [
            _num(e, "fiber_damping", path, millard_damping) if e.tag in _CLASS_CURVES else 0.0
            for e in elems
        ]
    )
    if curves is MuscleCurves.THELEN_2003:
        tags = (
            "FmaxTendonStrain",
            "FmaxMuscleStrain",
            "KshapeActive",
            "KshapePassive",
            "Af",
            "Flen",
        )
        tags += ("fv_linear_extrap_threshold",)
        cp = ThelenParameters(
            *(
                t([_num(e, tag, path, d) for e in elems])
                for tag, d in zip(tags, ThelenParameters.DEFAULTS)
            )
        )
    elif curves is MuscleCurves.MILLARD_2012:
        per = [_millard_curves(e, path) for e in elems]
        cp = MillardParameters(*(BezierCurve.stack([p[k] for p in per]) for k in range(4)))
    else:
        tags = (
            "active_force_width_scale",
            "passive_fiber_strain_at_one_norm_force",
            "tendon_strain_at_one_norm_force",
        )
        defaults = (1.0, 0.6, 0.049)
        cp = DeGrooteParameters(
            *(t([_num(e, tag, path, d) for e in elems]) for tag, d in zip(tags, defaults))
        )
    try:
        return MuscleParameters(
            **common,
            curves=curves,
            names=tuple(names),
            fiber_damping=damping,
            ignore_tendon_compliance=itc,
            maximum_pennation_angle=maxpen,
            curve_parameters=cp,
        )
    except ModelError as err:
        raise FileFormatError(path, str(err)) from None
