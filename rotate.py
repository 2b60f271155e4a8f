"""Rotate the Redis password without downtime on every host of an inventory.

    pyinfra -y inventories/production.py rotate.py                  # generated: a new one per host
    REDIS_PASSWORD=NEW pyinfra -y inventories/production.py rotate.py   # or the one you give

The new password is added beside the old one, the files (backend.auth, redis.conf, the backend
.env, the exporter's file) are rewritten, the consumers' units (`redis_backend_unit`,
`redis_exporter_unit`) restarted, then the old password is dropped; no restart of Redis. A
consumer without a unit keeps the old password valid until a second run (the summary says what
to restart first). Safe to run again after an interruption.
"""

from pyinfra import host, state

from operations import prologue, report, rotation, verify

ready = prologue.prepare(host, state)  # the same row as deploy.py (an upstream host's paths included)

if ready:
    conf, plat = ready.conf, ready.plat
    new = rotation.target_settings(conf, host.name)
    report.add_secret(new.password.reveal())
    rotation.rotate_password(conf, plat, host.name)
    verify.verify_server(new, plat)
