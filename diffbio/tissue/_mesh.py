"""Tetrahedral meshes: structured limb segments, boxes, and meshio import/export.

Frames: a limb segment follows OpenSim's segment convention, its long axis is the local
+Y axis; the cross-section lies in the X-Z plane and the angular coordinate ``theta`` is
right-handed about +Y (a point at angle theta sits at ``(r cos theta, y, -r sin theta)``).
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffbio._errors import FileFormatError, ShapeError

__all__ = [
    "TetMesh",
    "TetSplit",
    "box_mesh",
    "limb_mesh",
    "read_mesh",
    "write_mesh",
    "boundary_faces",
]


class TetSplit(enum.Enum):
    """How each hexahedral cell of a structured mesh is cut into 6 tetrahedra.

    ``KUHN``: every cell along its (0,0,0)-(1,1,1) index diagonal (translation invariant:
    all tetrahedra of the grid lean the same way).
    ``ALTERNATING``: the Kuhn split mirrored in every index direction whose cell index is
    odd, so that the diagonals alternate from cell to cell (a reflection-symmetric pattern
    with no preferred direction; still conforming, since mirroring maps a shared face's
    diagonal onto itself). Periodic directions need an even number of cells.
    """

    KUHN = "kuhn"
    ALTERNATING = "alternating"


# Kuhn split of a hexahedral index cell into 6 tetrahedra along the (0,0,0)-(1,1,1)
# diagonal: translation invariant, hence conforming on any structured index grid.
_KUHN = [
    [
        (0, 0, 0),
        tuple(int(ax == p[0]) for ax in range(3)),
        tuple(int(ax in p[:2]) for ax in range(3)),
        (1, 1, 1),
    ]
    for p in itertools.permutations(range(3))
]


@dataclass(frozen=True)
class TetMesh:
    """A linear tetrahedral mesh.

    Attributes:
        rest: (N, 3) [m] rest (reference) node positions.
        tets: (E, 4) int64 node indices, positively oriented (``det(Dm) > 0``).
        node_sets: named (K,) int64 node index tensors (e.g. ``"bone"``, ``"outer"``).
    """

    rest: torch.Tensor
    tets: torch.Tensor
    node_sets: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rest.ndim != 2 or self.rest.shape[-1] != 3:
            raise ShapeError(f"rest must be (N, 3), got {tuple(self.rest.shape)}")
        if self.tets.ndim != 2 or self.tets.shape[-1] != 4:
            raise ShapeError(f"tets must be (E, 4), got {tuple(self.tets.shape)}")

    @property
    def num_nodes(self) -> int:
        return int(self.rest.shape[0])

    @property
    def num_elements(self) -> int:
        return int(self.tets.shape[0])

    def with_rest(self, rest: torch.Tensor) -> TetMesh:
        """The same connectivity and node sets on new rest positions ``(N, 3) [m]``."""
        return TetMesh(rest, self.tets, dict(self.node_sets))

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> TetMesh:
        sets = {k: v.to(device=device) for k, v in self.node_sets.items()}
        return TetMesh(self.rest.to(dtype=dtype, device=device), self.tets.to(device=device), sets)

    def volumes(self) -> torch.Tensor:
        """(E,) [m^3] signed rest volumes."""
        return tet_volumes(self.rest, self.tets)


def tet_volumes(x: torch.Tensor, tets: torch.Tensor) -> torch.Tensor:
    """(..., E) [m^3] signed volumes of tetrahedra at positions ``x: (..., N, 3) [m]``."""
    p = x[..., tets, :]
    d = p[..., 1:, :] - p[..., :1, :]
    return (d[..., 0, :] * torch.linalg.cross(d[..., 1, :], d[..., 2, :], dim=-1)).sum(-1) / 6.0


def _orient(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    p = points[tets]
    d = p[:, 1:] - p[:, :1]
    vol = np.linalg.det(d)
    tets = tets.copy()
    neg = vol < 0
    tets[neg, 1], tets[neg, 2] = tets[neg, 2].copy(), tets[neg, 1].copy()
    return tets


def _structured_tets(
    shape: tuple[int, int, int], periodic_j: bool, split: TetSplit = TetSplit.KUHN
) -> np.ndarray:
    """Tetrahedra (6 per cell) of an (ni, nj, nk) cell grid over (ni+1, nj[+1], nk+1) nodes."""
    ni, nj, nk = shape
    mj = nj if periodic_j else nj + 1
    if split is TetSplit.ALTERNATING and periodic_j and nj % 2:
        raise ShapeError(f"the alternating split needs an even periodic cell count, got {nj}")

    def node(i, j, k):
        return (i * mj + (j % mj)) * (nk + 1) + k

    i, j, k = np.meshgrid(np.arange(ni), np.arange(nj), np.arange(nk), indexing="ij")
    i, j, k = i.ravel(), j.ravel(), k.ravel()
    flip = [np.zeros_like(i)] * 3
    if split is TetSplit.ALTERNATING:
        flip = [i % 2, j % 2, k % 2]
    out = []
    for tet in _KUHN:
        corners = [node(i + (a ^ flip[0]), j + (b ^ flip[1]), k + (c ^ flip[2])) for a, b, c in tet]
        out.append(np.stack(corners, axis=1))
    return np.concatenate(out, axis=0)


def limb_mesh(
    inner_radius: float,
    outer_radius: float,
    length: float,
    *,
    n_radial: int = 3,
    n_circ: int = 16,
    n_axial: int = 4,
    refine: int = 1,
    radial_grading: float = 1.0,
    split: TetSplit = TetSplit.KUHN,
    dtype: torch.dtype = torch.float64,
) -> TetMesh:
    """A soft-tissue sleeve around a rigid cylindrical bone, along the local +Y axis.

    The tissue fills ``inner_radius <= r <= outer_radius``, ``0 <= y <= length``. Each of
    the ``n_radial x n_circ x n_axial`` cells (all multiplied by ``refine``) is split into
    6 tetrahedra, so ``E = 6 n_radial n_circ n_axial refine^3``. ``radial_grading`` > 1 makes
    radial layers grow geometrically outward (finer near the bone). Every node lies exactly
    on its circle (``r`` from the radial layer), so the bone and skin surfaces are the
    inscribed polygons of ``n_circ refine`` sides. ``split`` picks the cut of each cell
    (:class:`TetSplit`; ``ALTERNATING`` needs an even ``n_circ refine``).

    Node sets: ``"bone"`` (r = inner_radius, tied to the bone), ``"outer"`` (skin,
    r = outer_radius), ``"bottom"`` (y = 0), ``"top"`` (y = length).
    """
    if not 0 < inner_radius < outer_radius or length <= 0:
        raise ShapeError("limb_mesh needs 0 < inner_radius < outer_radius and length > 0")
    nr, nc, na = n_radial * refine, n_circ * refine, n_axial * refine
    if nr < 1 or nc < 3 or na < 1:
        raise ShapeError("limb_mesh needs n_radial >= 1, n_circ >= 3, n_axial >= 1")
    w = radial_grading ** np.arange(nr)
    r = inner_radius + (outer_radius - inner_radius) * np.concatenate(
        [[0.0], np.cumsum(w) / w.sum()]
    )
    th = 2.0 * math.pi * np.arange(nc) / nc
    y = np.linspace(0.0, length, na + 1)
    R, T, Y = np.meshgrid(r, th, y, indexing="ij")
    pts = np.stack([R * np.cos(T), Y, -R * np.sin(T)], axis=-1).reshape(-1, 3)
    tets = _orient(pts, _structured_tets((nr, nc, na), periodic_j=True, split=split))
    ir, _, iy = np.meshgrid(np.arange(nr + 1), np.arange(nc), np.arange(na + 1), indexing="ij")
    ir, iy = ir.ravel(), iy.ravel()
    sets = {
        "bone": np.nonzero(ir == 0)[0],
        "outer": np.nonzero(ir == nr)[0],
        "bottom": np.nonzero(iy == 0)[0],
        "top": np.nonzero(iy == na)[0],
    }
    return TetMesh(
        torch.tensor(pts, dtype=dtype),
        torch.tensor(tets, dtype=torch.int64),
        {k: torch.tensor(v, dtype=torch.int64) for k, v in sets.items()},
    )


def box_mesh(
    size: tuple[float, float, float] = (1.0, 1.0, 1.0),
    cells: tuple[int, int, int] = (2, 2, 2),
    *,
    jitter: float = 0.0,
    seed: int = 0,
    split: TetSplit = TetSplit.KUHN,
    dtype: torch.dtype = torch.float64,
) -> TetMesh:
    """A box ``[0, size]`` split into ``6 prod(cells)`` tetrahedra.

    ``jitter`` moves interior nodes randomly by up to that fraction of a cell (for patch
    tests). Node sets: ``"x0", "x1", "y0", "y1", "z0", "z1"`` (faces), ``"interior"``.
    """
    n = [c + 1 for c in cells]
    axes = [np.linspace(0.0, s, m) for s, m in zip(size, n)]
    X = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    idx = np.stack(np.meshgrid(*[np.arange(m) for m in n], indexing="ij"), axis=-1).reshape(-1, 3)
    interior = np.all((idx > 0) & (idx < np.array(n) - 1), axis=1)
    if jitter:
        rng = np.random.default_rng(seed)
        h = np.array(size) / np.array(cells)
        X[interior] += jitter * h * rng.uniform(-1.0, 1.0, size=(int(interior.sum()), 3))
    tets = _orient(X, _structured_tets(tuple(cells), periodic_j=False, split=split))
    sets = {}
    for ax, name in enumerate("xyz"):
        sets[f"{name}0"] = np.nonzero(idx[:, ax] == 0)[0]
        sets[f"{name}1"] = np.nonzero(idx[:, ax] == n[ax] - 1)[0]
    sets["interior"] = np.nonzero(interior)[0]
    return TetMesh(
        torch.tensor(X, dtype=dtype),
        torch.tensor(tets, dtype=torch.int64),
        {k: torch.tensor(v, dtype=torch.int64) for k, v in sets.items()},
    )


def boundary_faces(tets: torch.Tensor) -> torch.Tensor:
    """(F, 3) int64 boundary triangles (faces used by one tetrahedron), outward oriented."""
    t = tets.cpu().numpy()
    local = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
    faces = t[:, local].reshape(-1, 3)
    key = np.sort(faces, axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return torch.tensor(faces[counts[inv.ravel()] == 1], dtype=torch.int64)


def read_mesh(path: str | Path, *, dtype: torch.dtype = torch.float64) -> TetMesh:
    """Read a tetrahedral mesh with meshio (any format it reads: .msh, .vtu, .vtk, .inp ...).

    Uses the ``tetra`` cells; named ``point_sets`` become node sets. Elements are
    re-oriented to positive volume; degenerate ones raise :class:`FileFormatError`.
    """
    import meshio

    path = Path(path)
    try:
        m = meshio.read(path)
    except FileNotFoundError:
        raise
    except (Exception, SystemExit) as exc:  # meshio raises many kinds (even SystemExit)
        raise FileFormatError(path, f"meshio could not read the mesh: {exc}") from exc
    blocks = [c.data for c in m.cells if c.type == "tetra"]
    if not blocks:
        kinds = sorted({c.type for c in m.cells})
        raise FileFormatError(
            path, f"no 'tetra' cells (found {kinds}); only linear tetrahedra are supported"
        )
    pts = np.asarray(m.points, dtype=np.float64)
    if pts.shape[1] != 3:
        raise FileFormatError(path, f"points must be 3-D, got {pts.shape[1]} columns")
    tets = np.concatenate(blocks, axis=0).astype(np.int64)
    vol = np.linalg.det(pts[tets[:, 1:]] - pts[tets[:, :1]])
    if np.any(np.abs(vol) <= 1e-14 * max(1.0, np.abs(vol).max())):
        bad = int(np.argmin(np.abs(vol)))
        raise FileFormatError(path, f"degenerate tetrahedron {bad} (zero volume)")
    tets = _orient(pts, tets)
    sets = {
        str(k): torch.tensor(np.asarray(v, dtype=np.int64).ravel())
        for k, v in (m.point_sets or {}).items()
    }
    return TetMesh(torch.tensor(pts, dtype=dtype), torch.tensor(tets), sets)


def write_mesh(
    path: str | Path, mesh: TetMesh, x: torch.Tensor | None = None, **point_data
) -> None:
    """Write ``mesh`` (at deformed positions ``x: (N, 3) [m]`` if given) with meshio."""
    import meshio

    pts = (mesh.rest if x is None else x).detach().cpu().numpy()
    data = {
        k: np.asarray(v.detach().cpu() if torch.is_tensor(v) else v) for k, v in point_data.items()
    }
    sets = {k: v.cpu().numpy() for k, v in mesh.node_sets.items()}
    meshio.write(
        Path(path),
        meshio.Mesh(pts, [("tetra", mesh.tets.cpu().numpy())], point_data=data, point_sets=sets),
    )
