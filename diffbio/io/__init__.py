"""diffbio.io: OpenSim file formats and the signal processing OpenSim applies before dynamics.

Files: Storage ``.sto``/``.mot`` (:func:`read_storage`, :func:`write_storage`), ``.trc``
markers (:func:`read_trc`), ExternalLoads ``.xml`` + force ``.mot``
(:func:`read_external_loads`, :func:`write_external_loads`).

Signals, reproducing OpenSim 4.6's InverseDynamicsTool / AnalyzeTool: padding and the
zero-lag IIR low-pass (:func:`lowpass_filter`, :func:`opensim_lowpass`), the natural
quintic spline derivatives of ``GCVSplineSet(5)`` (:func:`spline_derivatives`,
:func:`spline_evaluate`, :func:`spline_operator`) and both together
(:func:`prepare_coordinates`). Filters and splines are linear in the data: with torch
inputs they are applied as matrices and are differentiable with respect to the data.
"""

from diffbio.io._external_loads import (
    ExternalForce,
    ExternalLoads,
    read_external_loads,
    write_external_loads,
)
from diffbio.io._filter import (
    butterworth_filtfilt,
    lowpass_filter,
    lowpass_operator,
    opensim_iir,
    opensim_lowpass,
    opensim_pad,
)
from diffbio.io._prepare import find_index, prepare_coordinates
from diffbio.io._spline import spline_derivatives, spline_evaluate, spline_operator
from diffbio.io._storage import Storage, read_storage, write_storage
from diffbio.io._trc import TRC_UNITS, MarkerData, read_trc
from diffbio.io._trc_write import write_trc

__all__ = [
    "ExternalForce",
    "ExternalLoads",
    "MarkerData",
    "Storage",
    "TRC_UNITS",
    "butterworth_filtfilt",
    "find_index",
    "lowpass_filter",
    "lowpass_operator",
    "opensim_iir",
    "opensim_lowpass",
    "opensim_pad",
    "prepare_coordinates",
    "read_external_loads",
    "read_storage",
    "read_trc",
    "spline_derivatives",
    "spline_evaluate",
    "spline_operator",
    "write_external_loads",
    "write_storage",
    "write_trc",
]
