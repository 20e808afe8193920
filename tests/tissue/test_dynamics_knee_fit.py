import json
from dataclasses import replace

import pytest
import torch

from diffbio.cli._main import main
from diffbio.tissue import (
    BoundaryConditions,
    Material,
    MaterialModel,
    box_mesh,
    confined_compression_test,
    fit_lame,
    gait_torque,
    knee_exo_gait,
    simulate,
    solve_equilibrium,
    young_to_lame,
)
from diffbio.tissue._knee import SHANK

F64 = torch.float64


def test_damped_dynamics_settles_to_static_equilibrium_and_dissipates():
    mesh = box_mesh((0.02, 0.02, 0.02), (1, 1, 1))
    mat = Material.from_young(
        12000.0, 0.45, mesh.num_elements, density=1000.0, alpha=20.0, beta=0.005
    )
    s = mesh.node_sets
    loads = torch.zeros(mesh.num_nodes, 3, dtype=F64)
    loads[s["x1"], 1] = -0.05
    bc = BoundaryConditions.fix(s["x0"], mesh.rest[s["x0"]]).with_(loads=loads)
    traj = simulate(mesh, mat, lambda t: bc, 0.02, 30)
    static = solve_equilibrium(mesh, mat, bc)
    assert torch.allclose(traj.x[-1], static.x, atol=1e-6 * 0.02)
    assert bool((traj.dissipated >= 0).all()) and float(traj.dissipated.sum()) > 0
    # energy balance of backward Euler: work of the dead load >= stored energy + damping
    from diffbio.tissue import elastic_energy

    work = float((loads * (traj.x[-1] - mesh.rest)).sum())
    stored = float(elastic_energy(traj.x[-1], mesh, mat))
    assert work >= stored + float(traj.dissipated.sum()) - 1e-12
    assert traj.x.shape == (31, mesh.num_nodes, 3) and traj.time[-1] == pytest.approx(0.6)


def test_gait_torque_profile():
    assert gait_torque(0.0, 10.0, 1.0) == 0.0
    assert gait_torque(0.2, 10.0, 1.0) == pytest.approx(10.0)
    assert gait_torque(0.75, 10.0, 1.0) == pytest.approx(-4.0)
    assert gait_torque(1.2, 10.0, 1.0) == pytest.approx(10.0)


def test_knee_cuff_transmission_pressure_and_energy():
    seg = replace(SHANK, n_radial=1, n_circ=8, n_axial=4, cuff_width=0.1)
    soft = knee_exo_gait(E=12000.0, steps=4, cycles=1, segments=(seg,)).segments[0]
    stiff = knee_exo_gait(E=1.2e6, steps=4, cycles=1, segments=(seg,)).segments[0]
    for r in (soft, stiff):
        assert 0.0 < r.transmission_percent < 100.0
        assert r.peak_pressure_Pa > 0 and r.energy_absorbed_J > 0
        assert r.pressure_map.shape[1] == 3
    # a stiffer sleeve transmits more of the torque, migrates less, absorbs less
    assert stiff.transmission_percent > 90.0 > soft.transmission_percent
    assert stiff.cuff_migration_m < soft.cuff_migration_m
    # the torque is pushed anteriorly (+X) by positive torque: peak pressure on the skin
    # where the cuff presses, within the cuff band
    assert abs(soft.peak_y_m - seg.cuff_distance) <= seg.cuff_width / 2 + 1e-12


def test_fit_recovers_lame_from_confined_compression_and_shear():
    # two force-displacement experiments: confined compression (lam + 2 mu) and simple
    # shear by the virial (mu) on a single-cell cube
    mesh = box_mesh((0.01,) * 3, (1, 1, 1))
    lam_t, mu_t = young_to_lame(torch.tensor(12000.0, dtype=F64), torch.tensor(0.475, dtype=F64))

    def compression(lam, mu):
        return confined_compression_test(
            mesh, Material.from_lame(lam, mu, mesh.num_elements), 0.85, 0.01
        ).reshape(1)

    def shear(lam, mu):
        X = mesh.rest
        x = X.clone()
        x[:, 0] = X[:, 0] + 0.2 * X[:, 1]
        bc = BoundaryConditions.fix(torch.arange(mesh.num_nodes), x)
        mat = Material.from_lame(lam, mu, mesh.num_elements)
        res = solve_equilibrium(mesh, mat, bc)
        from diffbio.tissue import reaction_forces

        return (reaction_forces(res.x, mesh, mat, bc)[:, 0] * X[:, 1]).sum().reshape(1)

    with torch.no_grad():
        yc, ys = compression(lam_t, mu_t), shear(lam_t, mu_t)
    r = fit_lame([(compression, yc), (shear, ys)], 50000.0, 3000.0, iterations=20)
    assert r.lam == pytest.approx(float(lam_t), rel=1e-5)
    assert r.mu == pytest.approx(float(mu_t), rel=1e-5)
    assert r.loss[-1] < 1e-10 < r.loss[0]


def test_cli_uniaxial_and_torsion_json(capsys):
    assert (
        main(["tissue", "uniaxial", "--E", "12000", "--nu", "0.475", "--stretch", "1.2", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["nominal_stress_Pa"] == pytest.approx(3168.0, rel=1e-12)
    args = ["tissue", "torsion", "--E", "12000", "--nu", "0.475", "--inner-radius", "0.02"]
    args += [
        "--outer-radius",
        "0.05",
        "--length",
        "0.1",
        "--refine",
        "1",
        "--base",
        "1",
        "8",
        "1",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stiffness_Nm_per_rad"] > out["exact_Nm_per_rad"] > 0
    assert main(["tissue", "shear", "--gamma", "0.2"]) == 0
    assert "shear_stress_Pa" in capsys.readouterr().out


def test_cli_rejects_bad_material(capsys):
    assert main(["tissue", "uniaxial", "--nu", "0.5"]) == 2
    assert "nu" in capsys.readouterr().err


def test_neo_hookean_material_model_in_cli(capsys):
    assert main(["tissue", "uniaxial", "--model", "stable_neo_hookean", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == MaterialModel.STABLE_NEO_HOOKEAN.value and out["nominal_stress_Pa"] > 0
