"""Rotate the Redis password without downtime on every host of an inventory.

    pyinfra -y inventories/production.py rotate.py                      # generated: a new one per host
    REDIS_PASSWORD=NEW pyinfra -y inventories/production.py rotate.py   # or the one you give

See operations/rotation.py for the steps and the README for when the old password is dropped.
"""

from operations import flows

flows.rotate_password()
