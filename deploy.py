"""Provision the HSI backend's Redis server on every host of an inventory.

    pyinfra -y inventories/docker.py deploy.py        (see the README for the settings)

The flow (operations/flows.py): settings of every host validated -> one state read per host ->
install -> TLS + redis.conf + service + the backend's .env (one call) -> verify. A summary per host
ends the run (and reports/last-run.json).
"""

from operations import flows

flows.provision()
