"""Wrap surfaces: exact geometry, smooth contact, gradients, and OpenSim 4.6 (arm26,
Rajagopal2016) lengths and moment arms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffbio.model import load_osim
from diffbio.muscles._path_length import moment_arms, muscle_names, muscle_tendon_lengths
from diffbio.muscles._wrap import MANDATORY, NO_WRAP, wrap_cylinder, wrap_ellipsoid, wrap_sphere
from tests.conftest import opensim_data_path

T64 = torch.float64


def _total(p1, p2, out):
    code, r1, r2, wl = out
    return (r1 - p1).norm(dim=-1) + wl + (p2 - r2).norm(dim=-1), code


def test_cylinder_planar_wrap_is_tangent_arc_tangent():
    R = torch.tensor(0.05, dtype=T64)
    p1 = torch.tensor([-0.1, 0.02, 0.0], dtype=T64)
    p2 = torch.tensor([0.1, 0.02, 0.0], dtype=T64)
    total, code = _total(p1, p2, wrap_cylinder(p1, p2, R, torch.tensor(1.0, dtype=T64), (0, 0)))
    assert code == MANDATORY
    d = math.hypot(0.1, 0.02)
    t = math.sqrt(d * d - 0.05**2)
    phi = math.atan2(0.02, 0.1)
    a = math.acos(0.05 / d)
    theta = math.pi - 2 * phi - 2 * a
    assert abs(total - (2 * t + 0.05 * theta)) < 1e-14


def test_cylinder_helix_unrolls_to_a_straight_line():
    R = torch.tensor(0.05, dtype=T64)
    flat1 = torch.tensor([-0.1, 0.02, 0.0], dtype=T64)
    flat2 = torch.tensor([0.1, 0.02, 0.0], dtype=T64)
    planar, _ = _total(
        flat1, flat2, wrap_cylinder(flat1, flat2, R, torch.tensor(1.0, dtype=T64), (0, 0))
    )
    p1, p2 = flat1.clone(), flat2.clone()
    p1[2], p2[2] = -0.03, 0.04
    total, _ = _total(p1, p2, wrap_cylinder(p1, p2, R, torch.tensor(1.0, dtype=T64), (0, 0)))
    assert abs(total - math.hypot(planar, 0.07)) < 1e-14


def test_sphere_and_round_ellipsoid_agree():
    p1 = torch.tensor([-0.1, 0.01, 0.02], dtype=T64)
    p2 = torch.tensor([0.09, 0.015, -0.01], dtype=T64)
    r = torch.tensor(0.04, dtype=T64)
    a, _ = _total(p1, p2, wrap_sphere(p1, p2, r, (0, 0)))
    b, _ = _total(p1, p2, wrap_ellipsoid(p1, p2, r.expand(3), (0, 0)))
    # great circle in closed form
    d1, d2 = p1.norm().item(), p2.norm().item()
    ang = math.acos((p1 @ p2).item() / (d1 * d2)) - math.acos(0.04 / d1) - math.acos(0.04 / d2)
    exact = math.sqrt(d1**2 - 0.04**2) + math.sqrt(d2**2 - 0.04**2) + 0.04 * ang
    assert abs(a - exact) < 1e-12 and abs(b - exact) < 1e-12


@pytest.mark.parametrize("kind", ["cylinder", "sphere", "ellipsoid"])
def test_length_and_gradient_continuous_at_contact_onset(kind):
    """Move p2 so the segment goes from missing the surface to cutting it: the length and
    its derivative agree on both sides of the contact change."""
    R = torch.tensor(0.05, dtype=T64)
    semi = torch.tensor([0.05, 0.05, 0.07], dtype=T64)

    def length(y):
        p1 = torch.stack([torch.tensor(-0.1, dtype=T64), y, torch.tensor(0.0, dtype=T64)])
        p2 = torch.stack([torch.tensor(0.1, dtype=T64), y, torch.tensor(0.0, dtype=T64)])
        if kind == "cylinder":
            out = wrap_cylinder(p1, p2, R, torch.tensor(1.0, dtype=T64), (0, 0))
        elif kind == "sphere":
            out = wrap_sphere(p1, p2, R, (0, 0))
        else:
            out = wrap_ellipsoid(p1, p2, semi, (0, 0))
        total, code = _total(p1, p2, out)
        return torch.where(code == MANDATORY, total, (p2 - p1).norm()), code

    h = 1e-7
    y_in, y_out = (
        torch.tensor(0.05 - h, dtype=T64, requires_grad=True),
        torch.tensor(0.05 + h, dtype=T64, requires_grad=True),
    )
    (l_in, c_in), (l_out, c_out) = length(y_in), length(y_out)
    assert c_in == MANDATORY and c_out == NO_WRAP
    assert abs(l_in - l_out) < 1e-9
    g_in = torch.autograd.grad(l_in, y_in)[0]
    g_out = torch.autograd.grad(l_out, y_out)[0]
    assert abs(g_in - g_out) < 1e-5


@pytest.mark.parametrize("kind", ["cylinder", "sphere", "ellipsoid"])
def test_wrap_gradcheck_next_to_contact(kind):
    R = torch.tensor(0.05, dtype=T64)
    semi = torch.tensor([0.05, 0.052, 0.07], dtype=T64)
    p1 = torch.tensor([-0.1, 0.0499, 0.01], dtype=T64, requires_grad=True)
    p2 = torch.tensor([0.1, 0.0495, -0.02], dtype=T64, requires_grad=True)

    def f(p1, p2):
        if kind == "cylinder":
            out = wrap_cylinder(p1, p2, R, torch.tensor(1.0, dtype=T64), (0, 0))
        elif kind == "sphere":
            out = wrap_sphere(p1, p2, R, (0, 0))
        else:
            out = wrap_ellipsoid(p1, p2, semi, (0, 0))
        total, code = _total(p1, p2, out)
        assert code == MANDATORY
        return total

    assert torch.autograd.gradcheck(f, (p1, p2), eps=1e-7, atol=1e-6)


# ------------------------------------------------------------------ against OpenSim
osim = pytest.importorskip("opensim")


def _reference(folder, file, n, seed):
    from tests.muscles.test_path_opensim import opensim_lengths_moment_arms, random_states

    path = opensim_data_path(folder, file)
    model = load_osim(path)
    q = torch.cat([model.default_q()[None], random_states(model, n, seed)])
    names, L, R, _ = opensim_lengths_moment_arms(path, q.numpy())
    assert list(names) == list(muscle_names(model))
    return model, q, names, L, R


MULTI_WRAP = {"TRIlong", "gaslat_r", "gasmed_r", "gaslat_l", "gasmed_l"}


@pytest.mark.parametrize(
    "folder,file", [("arm26", "arm26.osim"), ("rajagopal2016", "Rajagopal2016.osim")]
)
def test_single_wrap_muscles_match_opensim(folder, file):
    model, q, names, L, R = _reference(folder, file, 2, seed=5)
    keep = [i for i, n in enumerate(names) if n not in MULTI_WRAP]
    el = np.abs(muscle_tendon_lengths(model, q).numpy() - L)[:, keep]
    er = np.abs(moment_arms(model, q).numpy() - R)[:, keep]
    worst = np.argsort(er.max(axis=(0,)).ravel())[::-1][:5]
    listing = [
        (names[keep[k // er.shape[2]]], model.coordinate_names[k % er.shape[2]]) for k in worst
    ]
    print("worst moment-arm pairs:", listing, "length error [mm]:", el.max() * 1e3)
    assert el.max() < 5e-4, names[keep[int(el.max(0).argmax())]]
    assert er.max() < 1e-3, listing


@pytest.mark.xfail(
    reason="several wrap objects on one path: OpenSim's iterative tangent "
    "adjustment gives up to ~5 mm different lengths (see report)",
    strict=False,
)
def test_multi_wrap_muscles_match_opensim():
    model, q, names, L, R = _reference("rajagopal2016", "Rajagopal2016.osim", 2, seed=5)
    keep = [i for i, n in enumerate(names) if n in MULTI_WRAP]
    el = np.abs(muscle_tendon_lengths(model, q).numpy() - L)[:, keep]
    assert el.max() < 5e-4
