"""Shared fixtures: the real OpenSim data in ../shared/data/opensim, read in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
OPENSIM_DATA = Path(
    os.environ.get("DIFFBIO_OPENSIM_DATA", REPO.parent / "shared" / "data" / "opensim")
)


def opensim_data_path(*parts: str) -> Path:
    """Path inside the shared OpenSim data; skips the calling test when it is absent."""
    path = OPENSIM_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared OpenSim data not found at {path} (set DIFFBIO_OPENSIM_DATA)")
    return path


@pytest.fixture
def opensim_data():
    return opensim_data_path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
