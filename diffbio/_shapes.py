"""Shape helpers in plain Python.

``torch.broadcast_shapes`` imports sympy on its first call (through torch's symbolic-shape
machinery), which costs most of a second at start-up; :func:`broadcast_shapes` computes
the same result for concrete integer shapes without it.
"""

from __future__ import annotations

from collections.abc import Iterable

from diffbio._errors import ShapeError

__all__ = ["broadcast_shapes"]


def broadcast_shapes(*shapes: Iterable[int]) -> tuple[int, ...]:
    """The shape the given shapes broadcast to under PyTorch's (NumPy's) rules.

    Args:
        *shapes: shapes as tuples (or ``torch.Size``) of non-negative integers.

    Returns:
        The broadcast shape as a tuple (``()`` for no shapes).

    Raises:
        ShapeError: two sizes along one dimension differ and neither is 1.
    """
    tuples = [tuple(int(d) for d in s) for s in shapes]
    ndim = max((len(s) for s in tuples), default=0)
    out = [1] * ndim
    for s in tuples:
        for k, d in enumerate(s, ndim - len(s)):
            if d == out[k] or d == 1:
                continue
            if out[k] == 1:
                out[k] = d
            else:
                raise ShapeError(
                    f"shapes {', '.join(str(t) for t in tuples)} do not broadcast: size "
                    f"{d} against {out[k]} at dimension {k - ndim}"
                )
    return tuple(out)
