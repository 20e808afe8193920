"""diffbio._shapes.broadcast_shapes against torch.broadcast_shapes."""

from __future__ import annotations

import itertools

import pytest
import torch

from diffbio import ShapeError
from diffbio._shapes import broadcast_shapes


def test_matches_torch_broadcast_shapes():
    sizes = (0, 1, 2, 3)
    shapes = [()] + [(a,) for a in sizes] + list(itertools.product(sizes, repeat=2))
    shapes += [(2, 1, 3), (1, 1, 1, 3), (4, 1, 1, 1)]
    checked = 0
    for s1, s2, s3 in itertools.product(shapes[:12], shapes, shapes[-4:]):
        try:
            want = tuple(torch.broadcast_shapes(s1, s2, s3))
        except RuntimeError:
            with pytest.raises(ShapeError, match="do not broadcast"):
                broadcast_shapes(s1, s2, s3)
        else:
            assert broadcast_shapes(s1, s2, s3) == want
            checked += 1
    assert checked > 100
    assert broadcast_shapes() == ()
    assert broadcast_shapes(torch.Size([5, 1]), (3,)) == (5, 3)
