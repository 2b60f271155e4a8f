"""The TLS part of the server probe (shell), kept apart so facts.py stays small.

The probe asks over TLS first, on each candidate address and port in turn (facts.py: the
configured TLS port, then the `tls-port` the server's current config file names -- a server
still on an older TLS config, e.g. when TLS is turned off again or its port changes; before a
config change, where the running server's config files say it listens), with the CA and, when
present, the deploy's own client certificate. The first that answers like Redis carries every
later question (`via=tls`, `tls_port=N`); if none does, the plain port does (`via=plain`),
which is what a server still running its pre-TLS config answers on. It also records what a
client without a certificate, and one on the plain port, is told, so verification can check
that TLS-only and mTLS are really enforced.
"""

from __future__ import annotations

import shlex

# Replies that mean "a Redis server answered" (as opposed to refused / reset / timed out).
_REPLIES = ("PONG", "NOAUTH", "WRONGPASS", "ERR", "-ERR", "LOADING")
REDIS_REPLY = "PONG|" + "|".join(f"{r}*" for r in _REPLIES[1:])


def client_args(ca_file: str, cert_file: str, key_file: str) -> str:
    """redis-cli TLS arguments (shell); the client certificate only where its files exist."""
    ca, cert, key = (shlex.quote(p) for p in (ca_file, cert_file, key_file))
    return (f'--tls --cacert {ca} $([ -s {cert} ] && [ -s {key} ] && echo "--cert {cert} --key {key}")')


def probe_block(ca_file: str, cert_file: str, key_file: str) -> str:
    """Shell run after `ask()` (the plain-port client) and the candidates `tls_try` ("ADDR,PORT"
    words, see facts.py) are defined; sets `via`. Empty without a CA path."""
    if not ca_file:
        return ""
    return f"""
tls_ca={shlex.quote(ca_file)}; tls_crt={shlex.quote(cert_file)}; tls_key={shlex.quote(key_file)}
tls_nocert() {{ p=$1; shift; timeout 5 "$cli" --no-auth-warning -h "$addr" -p "$p" --tls --cacert "$tls_ca" "$@" 2>&1 | tr -d '\\r'; }}
tls_ask() {{ p=$1; shift; if [ -s "$tls_crt" ] && [ -s "$tls_key" ]; then tls_nocert "$p" --cert "$tls_crt" --key "$tls_key" "$@"; else tls_nocert "$p" "$@"; fi; }}
echo "plain_ping=$(ask ping | head -n 1)"
tls_port=""; tried=" "
if [ -s "$tls_ca" ]; then
  for c in $tls_try; do
    a=${{c%,*}}; try=${{c##*,}}
    [ "$try" -gt 0 ] 2>/dev/null || continue
    case "$tried" in *" $c "*) continue ;; esac
    tried="$tried$c "
    reply=$(addr=$a; tls_ask "$try" ping | head -n 1)
    echo "tls_ping_$try=$reply"
    case "$reply" in {REDIS_REPLY}) tls_port=$try; addr=$a; break ;; esac
  done
fi
if [ -n "$tls_port" ]; then
  via=tls; echo via=tls; echo "tls_port=$tls_port"
  ask() {{ tls_ask "$tls_port" "$@"; }}
  echo "nocert_ping=$(tls_nocert "$tls_port" ping | head -n 1)"
else
  via=plain; echo via=plain
fi
""".rstrip()


def answered(reply: str | None) -> bool:
    """Whether a probe reply came from a Redis server (not a refusal, reset or timeout)."""
    text = (reply or "").strip()
    return text == "PONG" or text.startswith(_REPLIES[1:])
