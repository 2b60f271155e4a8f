"""hsi-redis: pyinfra operations that provision a native Redis (or Valkey) server for the
Home Security Intelligence backend. `deploy.py` shows the order in which they run."""
