"""A matplotlib backend for the Run button: ``plt.show()`` prints each open figure as a PNG in
a figure frame on stdout (``execution/figures.py`` cuts them out and shows them inline).

Selected with ``MPLBACKEND=module://coolcoding_plots`` and this folder on ``PYTHONPATH`` (the
session runner sets both). Drawing is Agg's; only ``show`` differs. A program can print a fake
frame, but only into its own output, where it is shown as the image it is (never as markup).
"""

from __future__ import annotations

import base64
import io
import sys

from matplotlib._pylab_helpers import Gcf  # type: ignore[import-not-found, unused-ignore]
from matplotlib.backend_bases import _Backend  # type: ignore[import-not-found, unused-ignore]
from matplotlib.backends.backend_agg import (  # type: ignore[import-not-found, unused-ignore]
    FigureCanvasAgg,
    FigureManagerBase,
)

FRAME_START = b"\x1e[coolcoding:figure:image/png;"
FRAME_END = b"]\x1e"


def emit(figure: object) -> None:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")  # type: ignore[attr-defined]
    sys.stdout.flush()
    out = sys.stdout.buffer
    out.write(FRAME_START + base64.b64encode(buf.getvalue()) + FRAME_END)
    out.flush()


@_Backend.export
class _BackendCoolcoding(_Backend):  # type: ignore[misc, unused-ignore]
    FigureCanvas = FigureCanvasAgg
    FigureManager = FigureManagerBase

    @staticmethod
    def show(*args: object, **kwargs: object) -> None:
        for manager in Gcf.get_all_fig_managers():
            emit(manager.canvas.figure)
        Gcf.destroy_all()
