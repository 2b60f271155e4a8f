"""The TLS part of the server probe (shell), kept apart so facts.py stays small.

With TLS on, the probe asks the TLS port first (with the CA, and the deploy's client
certificate under mTLS). If that answers like Redis, every later question goes over TLS
(`via=tls`); otherwise it falls back to the plain port (`via=plain`), which is what a
server still running its pre-TLS config answers on during the first TLS run. It also
records what a client without a certificate, and one on the plain port, is told, so
verification can check that TLS-only and mTLS are really enforced.
"""

from __future__ import annotations

import shlex

# Replies that mean "a Redis server answered" (as opposed to refused / reset / timed out).
REDIS_REPLY = "PONG|NOAUTH*|WRONGPASS*|ERR*|-ERR*|LOADING*"


def probe_block(tls_port: int, tls_args: str, tls_cert_args: str) -> str:
    """Shell run after `ask()` (the plain-port client) is defined; empty when TLS is off."""
    if not tls_port:
        return ""
    return f"""
tls_nocert() {{ timeout 5 "$cli" --no-auth-warning -h "$addr" -p {int(tls_port)} {tls_args} "$@" 2>&1 | tr -d '\\r'; }}
tls_ask() {{ tls_nocert {tls_cert_args} "$@"; }}
echo "plain_ping=$(ask ping | head -n 1)"
reply=$(tls_ask ping | head -n 1)
echo "tls_ping=$reply"
case "$reply" in {REDIS_REPLY}) echo via=tls; ask() {{ tls_ask "$@"; }} ;; *) echo via=plain ;; esac
echo "nocert_ping=$(tls_nocert ping | head -n 1)"
""".rstrip()


def cli_args(ca_file: str, cert_file: str | None, key_file: str | None) -> tuple[str, str]:
    """redis-cli arguments: (TLS with the CA, the client certificate part or "")."""
    ca = f"--tls --cacert {shlex.quote(ca_file)}"
    if cert_file and key_file:
        return ca, f"--cert {shlex.quote(cert_file)} --key {shlex.quote(key_file)}"
    return ca, ""


def answered(reply: str | None) -> bool:
    """Whether a probe reply came from a Redis server (not a refusal, reset or timeout)."""
    text = (reply or "").strip()
    return text == "PONG" or text.startswith(("NOAUTH", "WRONGPASS", "ERR", "-ERR", "LOADING"))
