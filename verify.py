"""Check only: ask every host's server what a client sees, change nothing (one read per host).

    pyinfra -y inventories/production.py verify.py

Same checks and summary as the last step of deploy.py, plus the version policy: a server
below `redis_minimum_version` fails verification.
"""

from operations import flows

flows.check()
