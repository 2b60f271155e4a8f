"""Restore a backup onto ONE host (replaces the data its server serves; the previous data is kept there).

    pyinfra -y inventories/production.py restore.py --limit nvr-1 \\
        --data restore_confirm=nvr-1 --data restore_from=backups/nvr-1/20250105T030000Z

restore_from: a backup directory, a host's backup directory (its newest), an RDB file, or an AOF directory
with its manifest (e.g. a Docker Compose volume's). See operations/restores.py and the README.
"""

from operations import flows

flows.restore()
