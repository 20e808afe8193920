"""The numeric block of a Storage file parsed in one C pass (``np.loadtxt``) agrees with
the row-by-row parse (Python ``float`` on each token) on every table it accepts, hands
every table it might read differently to the row-by-row parse, and errors keep their
line numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffbio import FileFormatError
from diffbio.io import read_storage
from diffbio.io._storage import _parse_block, _parse_rows
from tests.conftest import opensim_data_path

HEADER = "demo\nversion=1\nnColumns=3\ninDegrees=no\nendheader\ntime\ta\tb\n"

# (rows, the C pass is expected to accept them)
CASES = [
    ("1\t2\t3\n2\t5\t6", True),
    ("1 2 3\n2 5 6", True),
    ("  1\t 2 \t3 \n2\t5\t6", True),  # spaces around tab-separated fields
    ("1 2 3\n\n2 5 6", True),  # blank line between rows
    ("1 nan -Infinity\n2 +5 .5e-3", True),
    ("1 1e400 3", True),  # overflow to inf, as float() does
    ("1\t2\t3\t", False),  # trailing empty field
    ("1\t\t2\t3", False),  # empty inner field
    ("1 2\t3\t4", False),  # a space inside a tab-separated field
    ("1 2 3\n2\t5\t6", False),  # tabs on one row only
    ("1_0 2 3", False),  # float() reads underscores, the C pass does not
    ("0x1p3 2 3", False),
    ("1,2,3", False),
    ("1 2 3 # note", False),
    ("1 2 3 4", False),
    ("1 2", False),
]


def _reference(rows: str) -> np.ndarray:
    """Python's float() on whitespace/tab tokens, row by row (the definition)."""
    out = []
    for line in rows.split("\n"):
        if line.strip():
            parts = [p.strip() for p in line.split("\t")] if "\t" in line else line.split()
            out.append([float(p) for p in parts if p != ""])
    return np.array(out)


@pytest.mark.parametrize("rows, fast", CASES)
def test_block_parse_agrees_with_row_parse(rows, fast):
    lines = rows.split("\n")
    table = _parse_block(lines, 0, 3)
    assert (table is not None) == fast
    if fast:
        ref = _reference(rows)
        assert table.shape == ref.shape
        np.testing.assert_array_equal(table, ref)  # bitwise, NaN where NaN
        np.testing.assert_array_equal(_parse_rows(Path("x"), lines, 0, ["t", "a", "b"])[0], ref)


@pytest.mark.parametrize("rows, fast", CASES)
def test_read_storage_same_with_either_parse(rows, fast, tmp_path):
    """read_storage gives the row parse's table, or its exact error."""
    path = tmp_path / "t.sto"
    path.write_text(HEADER + rows + "\n")
    lines = path.read_text().splitlines()
    try:
        ref, _ = _parse_rows(path, lines, 6, ["time", "a", "b"])
    except FileFormatError as err:
        with pytest.raises(FileFormatError) as got:
            read_storage(path)
        assert str(got.value) == str(err)
        return
    st = read_storage(path)
    np.testing.assert_array_equal(st.time, ref[:, 0])
    np.testing.assert_array_equal(st.data, ref[:, 1:])


def test_errors_after_a_fast_parse_name_the_line(tmp_path):
    """Rows parsed in one pass, blank lines between them: a NaN or a time step back is
    reported at its own line of the file."""
    path = tmp_path / "n.sto"
    path.write_text(HEADER + "0\t1\t2\n\n\n0.1\tnan\t2\n")  # the NaN is on line 10
    with pytest.raises(FileFormatError, match="line 10, column a: NaN value at time 0.1"):
        read_storage(path, allow_nan=False)
    assert np.isnan(read_storage(path).data[1, 0])
    path.write_text(HEADER + "0\t1\t2\n\n0.2\t1\t2\n0.1\t1\t2\n")  # step back on line 10
    with pytest.raises(FileFormatError, match="line 10, column time: time is not strictly"):
        read_storage(path)


@pytest.mark.parametrize(
    "parts", [("gait2392", "subject01_walk1_ik.mot"), ("gait2392", "subject01_walk1_grf.mot")]
)
def test_real_files_take_the_fast_parse_bitwise(parts):
    path = opensim_data_path(*parts)
    lines = path.read_text().splitlines()
    li = next(i for i, s in enumerate(lines) if s.strip().lower() == "endheader") + 1
    labels = lines[li].split("\t")
    table = _parse_block(lines, li + 1, len(labels))
    assert table is not None
    ref, _ = _parse_rows(path, lines, li + 1, [s.strip() for s in labels])
    np.testing.assert_array_equal(table, ref)
