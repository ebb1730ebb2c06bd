"""``cmr-monitor`` command line: one module per command group, added to one Typer app (``app``).

- ``score``, ``train``, ``synth``: score masks once, train the autoencoder, write simulated data;
- ``watch``, ``demo``: the watch daemon and the live demo;
- ``db``: ``db upgrade|downgrade|current``, ``status``, ``export``;
- ``evaluate``: pseudo vs real metrics, as a report;
- ``dashboard``: the Streamlit dashboard (``dashboard.launch`` starts it);
- ``options``, ``exits``, ``logs``: what the command modules share (options, error exits, logging);
  ``app``: the app and ``main``.

Each command parses options and calls a library function with keyword arguments. ``python -m
monitor.cli`` runs the same app as the ``cmr-monitor`` console script.
"""

from monitor.cli.app import app, main

__all__ = ["app", "main"]
