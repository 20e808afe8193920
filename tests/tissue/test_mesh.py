import math

import numpy as np
import pytest
import torch

from diffbio import FileFormatError, ShapeError
from diffbio.tissue import TetMesh, boundary_faces, box_mesh, limb_mesh, read_mesh, write_mesh


def test_limb_mesh_counts_orientation_and_sets():
    m = limb_mesh(0.02, 0.05, 0.1, n_radial=2, n_circ=8, n_axial=3, refine=2)
    assert m.num_elements == 6 * 4 * 16 * 6
    vol = m.volumes()
    assert bool((vol > 0).all())
    r = m.rest[:, [0, 2]].norm(dim=-1)
    assert torch.allclose(r[m.node_sets["bone"]], torch.tensor(0.02, dtype=torch.float64))
    assert torch.allclose(r[m.node_sets["outer"]], torch.tensor(0.05, dtype=torch.float64))
    assert float(m.rest[m.node_sets["top"], 1].min()) == pytest.approx(0.1)
    # inscribed polygons: the volume is the exact polygonal annulus, pi -> n/2 sin(2 pi/n)
    n = 16
    poly = 0.5 * n * math.sin(2 * math.pi / n)
    assert float(vol.sum()) == pytest.approx(poly * (0.05**2 - 0.02**2) * 0.1, rel=1e-12)


def test_limb_mesh_axis_and_angle_convention():
    m = limb_mesh(0.01, 0.02, 0.1, n_radial=1, n_circ=4, n_axial=1)
    # node at theta = 90 deg sits at -Z (right-handed about +Y from +X)
    outer = m.rest[m.node_sets["outer"]]
    assert bool(((outer[:, 0].abs() < 1e-12) & (outer[:, 2] < -0.019)).any())


def test_limb_mesh_is_conforming():
    m = limb_mesh(0.02, 0.05, 0.1, n_radial=2, n_circ=6, n_axial=2)
    faces = boundary_faces(m.tets)
    # closed surface: every boundary edge shared by exactly two boundary triangles
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    _, counts = torch.unique(e, dim=0, return_counts=True)
    assert bool((counts == 2).all())
    # boundary area = inner + outer cylinders + two annular end caps (polygonal)
    p = m.rest[faces]
    area = 0.5 * torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]).norm(dim=-1).sum()
    n = 6
    side = 2 * n * math.sin(math.pi / n) * (0.02 + 0.05) * 0.1
    caps = 2 * 0.5 * n * math.sin(2 * math.pi / n) * (0.05**2 - 0.02**2)
    assert float(area) == pytest.approx(side + caps, rel=1e-12)


def test_box_mesh_jitter_keeps_boundary():
    m = box_mesh((1.0, 2.0, 3.0), (3, 3, 3), jitter=0.3)
    assert m.num_elements == 162
    assert bool((m.volumes() > 0).all())
    assert float(m.volumes().sum()) == pytest.approx(6.0, rel=1e-12)
    assert torch.equal(m.rest[m.node_sets["x1"], 0], torch.full((16,), 1.0, dtype=torch.float64))


def test_meshio_round_trip(tmp_path):
    m = limb_mesh(0.02, 0.05, 0.1, n_radial=1, n_circ=6, n_axial=1)
    path = tmp_path / "sleeve.vtu"
    write_mesh(path, m)
    back = read_mesh(path)
    assert torch.allclose(back.rest, m.rest)
    assert torch.equal(back.tets, m.tets)


def test_read_mesh_flips_negative_tets(tmp_path):
    import meshio

    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    path = tmp_path / "neg.vtu"
    meshio.write(path, meshio.Mesh(pts, [("tetra", np.array([[0, 2, 1, 3]]))]))
    m = read_mesh(path)
    assert float(m.volumes()[0]) == pytest.approx(1 / 6)


def test_read_mesh_errors_name_the_file(tmp_path):
    import meshio

    path = tmp_path / "tri.vtu"
    meshio.write(path, meshio.Mesh(np.eye(3), [("triangle", np.array([[0, 1, 2]]))]))
    with pytest.raises(FileFormatError, match="tri.vtu.*tetra"):
        read_mesh(path)
    bad = tmp_path / "junk.vtu"
    bad.write_text("not a mesh")
    with pytest.raises(FileFormatError, match="junk.vtu"):
        read_mesh(bad)


def test_shape_errors():
    with pytest.raises(ShapeError):
        TetMesh(torch.zeros(4, 2), torch.zeros(1, 4, dtype=torch.int64))
    with pytest.raises(ShapeError):
        limb_mesh(0.05, 0.02, 0.1)
