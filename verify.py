"""Check only: ask every host's server what a client sees, change nothing.

    pyinfra -y inventories/production.py verify.py

Same checks and summary as the last step of deploy.py, plus the version policy: a server
below `redis_minimum_version` fails verification (a lower version than HSI asks for is a
warning).
"""

from pyinfra import host, state

from operations import prologue, verify

ready = prologue.prepare(host, state)  # the version policy judges the installed server

if ready:
    verify.verify_server(ready.conf, ready.plat)
