"""The cmr-monitor dashboard: a Streamlit multipage app over the results database.

``app.py`` is the entry point (``cmr-monitor dashboard`` runs ``streamlit run`` on it, through
``launch``); the pages are in ``views/``. The modules here hold the logic the pages share, as plain
functions that can be imported and tested without a running app:

- ``config``: the dashboard's settings (``CMR_MONITOR_*``, as ``monitor.config``);
- ``auth``: the optional password login;
- ``data``: cached reads through ``monitor.store`` (and the one write, reviews);
- ``queries``: compositions of store queries that return DataFrames;
- ``summaries``: pure pandas transforms (version summary, flag-type precision, version markers);
- ``charts``: Altair charts;
- ``viewer``: slice rendering and path resolution inside the configured folders;
- ``launch``: starting and stopping the server as a subprocess (no Streamlit import).

The dashboard reads through ``monitor.store`` and writes only reviews.
"""

__all__: list[str] = []
