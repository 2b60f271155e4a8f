"""pyinfra loads this file before it connects to any host (see operations/report.py)."""

from pyinfra import state

from operations import report

# Hosts that fail to connect are dropped before deploy.py runs: keep their reason, and write
# the summary even when no host connects at all.
report.install(state)
