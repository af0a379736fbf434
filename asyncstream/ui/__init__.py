"""The dashboard: an ASGI app over a context (``app``) and its server (``server``).

Install with ``pip install 'asyncstream[ui]'``. The page and its chart library (uPlot,
vendored under ``static/``) are served by the app itself: the dashboard needs no
internet access.
"""

__all__: list[str] = []
