"""The .osim importer: every shared model, OpenSim's own view of it, functions, errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from diffbio import FileFormatError, ModelError
from diffbio.kinematics import forward_kinematics
from diffbio.model import CoordinateType, JointType, load_osim, parse_osim_string
from diffbio.model._functions import Polynomial
from diffbio.model._osim import _Ctx, parse_function
from tests._support import opensim_ref as ref
from tests.conftest import opensim_data_path
from tests.kinematics.test_fk_opensim import MODELS

osim = ref.osim
_MT = {1: CoordinateType.ROTATIONAL, 2: CoordinateType.TRANSLATIONAL, 3: CoordinateType.COUPLED}


@pytest.mark.parametrize("rel", MODELS)
def test_model_matches_opensims_view(rel):
    path = opensim_data_path(*rel.split("/"))
    model = load_osim(path)
    om, state = ref.load(path)
    cs = om.getCoordinateSet()
    assert model.coordinate_names == tuple(cs.get(i).getName() for i in range(cs.getSize()))
    for i, c in enumerate(model.coordinates):
        oc = cs.get(i)
        assert c.motion_type is _MT[oc.getMotionType()], c.name
        assert c.range == pytest.approx((oc.getRangeMin(), oc.getRangeMax()))
        assert c.locked == oc.getDefaultLocked() and c.clamped == oc.getDefaultClamped()
        assert c.default_value == pytest.approx(oc.getDefaultValue())
    bs = om.getBodySet()
    assert model.body_names == tuple(bs.get(i).getName() for i in range(bs.getSize()))
    for b in model.bodies:
        ob = bs.get(b.name)
        assert b.mass == pytest.approx(ob.getMass())
        assert np.allclose(b.mass_center, ob.getMassCenter().to_numpy())
        I = ob.getInertia()
        assert np.allclose(b.inertia[:3], I.getMoments().to_numpy())
        assert np.allclose(b.inertia[3:], I.getProducts().to_numpy())
    assert model.total_mass == pytest.approx(om.getTotalMass(state))
    assert model.marker_names == tuple(
        om.getMarkerSet().get(i).getName() for i in range(om.getMarkerSet().getSize())
    )
    assert model.gravity == pytest.approx(tuple(om.getGravity().to_numpy()))
    assert len(model.couplers) == om.getConstraintSet().getSize()


@pytest.mark.parametrize("kind", ["SimmSpline", "NaturalCubicSpline", "PiecewiseLinearFunction"])
@pytest.mark.parametrize("n", [2, 3, 4, 7, 12])
def test_functions_match_opensim_values_and_derivatives(kind, n, tmp_path):
    """Each function as OpenSim 4.6 itself reads it from XML (it reads NaturalCubicSpline
    as a SimmSpline): values, slopes and curvatures, extrapolation included."""
    rng = np.random.default_rng(n)
    x = np.sort(rng.uniform(-2, 2, n))
    y = rng.normal(size=n)
    xml = (
        f"<{kind} name='f'><x>{' '.join(map(repr, x.tolist()))}</x>"
        f"<y>{' '.join(map(repr, y.tolist()))}</y></{kind}>"
    )
    ours = parse_function(ET.fromstring(xml), _Ctx(None))
    path = tmp_path / "f.xml"
    path.write_text(f"<OpenSimDocument Version='40000'>{xml}</OpenSimDocument>")
    theirs = osim.Function.safeDownCast(osim.OpenSimObject.makeObjectFromFile(str(path)))
    xs = np.linspace(x[0] - 0.5, x[-1] + 0.5, 97)
    xt = torch.tensor(xs)
    for order in (0, 1, 2):
        got = ours(xt, order).numpy()
        want = []
        for v in xs:
            vec = osim.Vector(1, float(v))
            if order == 0:
                want.append(theirs.calcValue(vec))
            else:
                want.append(theirs.calcDerivative(osim.StdVectorInt([0] * order), vec))
        want = np.array(want)
        if order == 2 or kind == "PiecewiseLinearFunction":
            # derivatives jump at the knots of a piecewise function: compare between them
            inside = (xs > x[0]) & (xs < x[-1]) & (np.abs(xs[:, None] - x).min(1) > 1e-9)
            got, want = got[inside], want[inside]
        assert np.allclose(got, want, atol=1e-10, rtol=1e-10), (kind, n, order)


def test_polynomial_matches_opensim():
    coeffs = [0.3, -1.2, 0.5, 2.0]
    theirs = osim.PolynomialFunction(osim.Vector(coeffs))
    ours = Polynomial(coefficients=tuple(coeffs))
    for v in np.linspace(-2, 2, 11):
        assert ours(torch.tensor([v]), 0).item() == pytest.approx(
            theirs.calcValue(osim.Vector(1, v))
        )
        d = theirs.calcDerivative(osim.StdVectorInt([0]), osim.Vector(1, v))
        assert ours(torch.tensor([v]), 1).item() == pytest.approx(d)


_FORMAT_30000 = """<?xml version="1.0" encoding="UTF-8"?>
<OpenSimDocument Version="30000">
<Model name="two_link">
  <gravity>0 -9.80665 0</gravity>
  <BodySet><objects>
    <Body name="ground"><mass>0</mass><mass_center>0 0 0</mass_center>
      <inertia_xx>0</inertia_xx><inertia_yy>0</inertia_yy><inertia_zz>0</inertia_zz>
      <inertia_xy>0</inertia_xy><inertia_xz>0</inertia_xz><inertia_yz>0</inertia_yz></Body>
    <Body name="upper"><mass>2</mass><mass_center>0 -0.2 0</mass_center>
      <inertia_xx>0.02</inertia_xx><inertia_yy>0.003</inertia_yy><inertia_zz>0.02</inertia_zz>
      <inertia_xy>0</inertia_xy><inertia_xz>0</inertia_xz><inertia_yz>0</inertia_yz>
      <Joint><CustomJoint name="shoulder">
        <parent_body>ground</parent_body>
        <location_in_parent>0 1.5 0</location_in_parent>
        <orientation_in_parent>0.1 0 0.2</orientation_in_parent>
        <location>0 0.02 0</location><orientation>0 0.3 0</orientation>
        <CoordinateSet><objects>
          <Coordinate name="sh_flex"><motion_type>rotational</motion_type>
            <default_value>0</default_value><range>-3 3</range>
            <clamped>false</clamped><locked>false</locked></Coordinate>
        </objects></CoordinateSet>
        <SpatialTransform>
          <TransformAxis name="rotation1"><function><LinearFunction><coefficients>1 0</coefficients></LinearFunction></function>
            <coordinates>sh_flex</coordinates><axis>0 0 1</axis></TransformAxis>
          <TransformAxis name="rotation2"><function><Constant><value>0</value></Constant></function>
            <coordinates></coordinates><axis>0 1 0</axis></TransformAxis>
          <TransformAxis name="rotation3"><function><Constant><value>0</value></Constant></function>
            <coordinates></coordinates><axis>1 0 0</axis></TransformAxis>
          <TransformAxis name="translation1"><function><Constant><value>0</value></Constant></function>
            <coordinates></coordinates><axis>1 0 0</axis></TransformAxis>
          <TransformAxis name="translation2"><function><Constant><value>0</value></Constant></function>
            <coordinates></coordinates><axis>0 1 0</axis></TransformAxis>
          <TransformAxis name="translation3"><function><Constant><value>0</value></Constant></function>
            <coordinates></coordinates><axis>0 0 1</axis></TransformAxis>
        </SpatialTransform>
      </CustomJoint></Joint>
    </Body>
    <Body name="lower"><mass>1</mass><mass_center>0 -0.15 0</mass_center>
      <inertia_xx>0.01</inertia_xx><inertia_yy>0.001</inertia_yy><inertia_zz>0.01</inertia_zz>
      <inertia_xy>0</inertia_xy><inertia_xz>0</inertia_xz><inertia_yz>0</inertia_yz>
      <Joint><PinJoint name="elbow">
        <parent_body>upper</parent_body>
        <location_in_parent>0 -0.3 0</location_in_parent>
        <orientation_in_parent>0 0 0</orientation_in_parent>
        <location>0 0 0</location><orientation>0 0 0</orientation>
        <CoordinateSet><objects>
          <Coordinate name="el_flex"><motion_type>rotational</motion_type>
            <default_value>0.5</default_value><range>0 2.5</range>
            <clamped>true</clamped><locked>false</locked></Coordinate>
        </objects></CoordinateSet>
      </PinJoint></Joint>
    </Body>
  </objects></BodySet>
  <MarkerSet><objects>
    <Marker name="wrist"><body>lower</body><location>0 -0.3 0.01</location><fixed>false</fixed></Marker>
  </objects></MarkerSet>
</Model>
</OpenSimDocument>
"""


def test_format_30000_loads_and_matches_opensim(tmp_path):
    """A 3.x-format model (joints inside bodies) gives OpenSim's kinematics."""
    path = tmp_path / "two_link_30000.osim"
    path.write_text(_FORMAT_30000)
    model = load_osim(path)
    assert model.coordinate_names == ("sh_flex", "el_flex")
    assert [j.type for j in model.joints] == [JointType.CUSTOM, JointType.PIN]
    om, state = ref.load(path)
    q = torch.tensor([[0.3, 1.1], [-1.0, 0.2]], dtype=torch.float64)
    poses = forward_kinematics(model, q)
    for i in range(2):
        ref.set_q(om, state, q[i].numpy())
        R, p = ref.body_poses(om, state, model.body_names)
        assert np.abs(p - poses.translation[i].numpy()).max() < 1e-12
        assert np.abs(R - poses.rotation[i].numpy()).max() < 1e-12


def test_truncated_osim_is_a_clear_error(tmp_path):
    text = opensim_data_path("arm26", "arm26.osim").read_text()
    bad = tmp_path / "truncated.osim"
    bad.write_text(text[: len(text) // 2])
    with pytest.raises(FileFormatError, match=r"truncated\.osim, line \d+: not a valid \.osim"):
        load_osim(bad)


def test_unknown_joint_type_is_a_clear_error(tmp_path):
    text = opensim_data_path("arm26", "arm26.osim").read_text()
    bad = tmp_path / "weird_joint.osim"
    bad.write_text(
        text.replace("<WeldJoint ", "<HingeOfMysteryJoint ").replace(
            "</WeldJoint>", "</HingeOfMysteryJoint>"
        )
    )
    with pytest.raises(ModelError, match="unsupported type <HingeOfMysteryJoint>"):
        load_osim(bad)


def test_unknown_body_reference_is_a_clear_error(tmp_path):
    text = opensim_data_path("arm26", "arm26.osim").read_text()
    bad = tmp_path / "bad_ref.osim"
    bad.write_text(
        text.replace(
            "<socket_parent>/bodyset/r_humerus</socket_parent>",
            "<socket_parent>/bodyset/no_such_body</socket_parent>",
            1,
        )
    )
    with pytest.raises(ModelError, match="no_such_body"):
        load_osim(bad)


def test_not_a_model():
    with pytest.raises(FileFormatError, match="no <Model>"):
        parse_osim_string("<OpenSimDocument Version='40000'><Foo/></OpenSimDocument>")


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load_osim("/nonexistent/model.osim")
