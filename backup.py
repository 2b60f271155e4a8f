"""Back up every host's Redis data to the control machine.

    pyinfra -y inventories/production.py backup.py          # -> backups/<host>/<UTC time>/

A snapshot from the running server (redis-cli --rdb as the admin identity, checked on the host), copied
here with its manifest; the newest redis_backup_keep stay. See operations/backups.py and the README.
"""

from operations import flows

flows.backup()
