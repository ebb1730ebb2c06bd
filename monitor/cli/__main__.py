"""``python -m monitor.cli ...``: the ``cmr-monitor`` command line."""

from monitor.cli.app import main

main()
