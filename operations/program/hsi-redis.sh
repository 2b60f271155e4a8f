#!/bin/sh
# shellcheck disable=SC2016,SC2046,SC2086,SC2015
# (programs in single quotes; splitting is deliberate under set -f; `A && B || die` dies on any failure)
# hsi-redis VERB [OPTIONS]: the host side of the hsi-redis deploy (program spec v1, issue 10).
# VERB: state verify install apply restart secure-aof keep-last-good rotate rotate-add rotate-drop write firewall
#       ping snapshot stage restore
# Sent whole with every call (sh -c "<text>" hsi-redis VERB ...) or installed as /usr/local/sbin/hsi-redis.
# The only code that talks to the server's CLI or guards data on a host. Output: key=value lines; a
# failing verb says why on stderr (`hsi-redis: ...`) and exits 1; state and verify never fail. Passwords
# never reach argv or output: the CLI gets them through REDISCLI_AUTH or on stdin.
set -f     # paths are data: no globbing
umask 077  # whatever this creates is private until it says otherwise
LC_ALL=C; export LC_ALL
unset REDISCLI_AUTH
NL='
'
DIFS=$IFS

say() { printf 'hsi-redis: %s\n' "$*" >&2; }
die() { say "$@"; exit 1; }
# state and verify never exit non-zero (pyinfra fails a host whose fact command does)
bad() { case $verb in state|verify) printf "error=%s\n" "$*"; exit 0;; esac; die "$@"; }

verb=${1:-}; [ $# -gt 0 ] && shift
sd=/etc/hsi-redis admin=hsi-admin service=redis-server config=/etc/redis/redis.conf cli=redis-cli
suser=redis sgroup=redis log="" T=5 W=60 salt="" datadir="" files="" dirs="" envs="" envkeys="" pkgs="" units="" layouts=""
kernel=0 modules="" seports="" dnfcand=0 pm="" maxage=3600 locktime=300 mstream="" dnfspec="" pinned=0
setype=redis_port_t setools=policycoreutils-python-utils rfiles="" enable=0 runits="" drop=0 sysctl="" eunits=""
noserver=0 fw=0 fwtool="" fwfile="" fwunit="" fwmark="" fwrm="" pgaddr="" pgport=6379 pgca="" pgcrt="" pgkey=""
metrics="" aunits="" unit_lines=""
dunits="" into="" keep=0 from="" wsha="" wkeys="" snaps="" work=/var/lib/hsi-redis
STAMP=${HSI_REDIS_APT_STAMP:-/var/lib/apt/periodic/update-success-stamp}  # apt's last update (tests: elsewhere)
while [ $# -gt 0 ]; do
  o=$1
  case $o in
    --kernel|--enable|--apt-pinned|--dnf-candidates|--no-server|--firewall) v=1;;
    *) [ $# -ge 2 ] || bad "$o needs a value"; v=$2; shift;;
  esac
  shift
  case $v in *"$NL"*) bad "$o: a value may not hold a line break";; esac
  case $o in
    --state-dir) sd=$v;; --admin-user) admin=$v;; --service) service=$v;; --config) config=$v;;
    --cli) cli=$v;; --user) suser=$v;; --group) sgroup=$v;; --log) log=$v;; --timeout) T=$v;;
    --wait) W=$v;; --data-dir) datadir=$v;; --salt) salt=$v;; --file) files=$files$v$NL;;
    --dir) dirs=$dirs$v$NL;; --env) envs=$envs$v$NL;; --env-keys) envkeys=$envkeys$v$NL;;
    --packages) pkgs=$v;; --units) units=$v;; --layout) layouts=$layouts$v$NL;; --kernel) kernel=1;;
    --modules) modules=$v;; --selinux-ports) seports=$v;; --dnf-candidates) dnfcand=1;; --pm) pm=$v;;
    --update-max-age) maxage=$v;; --lock-timeout) locktime=$v;; --module-stream) mstream=$v;;
    --dnf-spec) dnfspec=$v;; --apt-pinned) pinned=1;; --selinux-type) setype=$v;;
    --selinux-tools) setools=$v;; --restart-files) rfiles=$v;; --enable) enable=1;;
    --restart-units) runits=$v;; --drop) drop=$v;; --sysctl) sysctl=$v;; --enable-units) eunits=$v;;
    --no-server) noserver=1;; --firewall) fw=1;; --tool) fwtool=$v;; --fw-file) fwfile=$v;; --fw-unit) fwunit=$v;;
    --fw-mark) fwmark=$v;; --remove) fwrm=$fwrm$v$NL;; --addr) pgaddr=$v;; --port) pgport=$v;; --ca) pgca=$v;;
    --cert) pgcrt=$v;; --key) pgkey=$v;;
    --metrics) metrics=$v;; --after-units) aunits=$v;;
    --disable-units) dunits=$v;; --into) into=$v;; --keep) keep=$v;; --from) from=$v;; --sha256) wsha=$v;;
    --keys) wkeys=$v;; --snapshots) snaps=$v;; --work) work=$v;;
    *) bad "unknown option $o";;
  esac
done
for o in "--timeout $T" "--wait $W" "--update-max-age $maxage" "--lock-timeout $locktime" "--drop $drop" \
  "--keep $keep" "--keys ${wkeys:-0}"; do
  case ${o#* } in ''|*[!0-9]*) bad "${o%% *} must be a whole number, got '${o#* }'";; esac
done
[ "$T" -gt 0 ] && [ "$W" -gt 0 ] || bad "--timeout and --wait must be above 0 (timeout 0 waits forever)"
case $salt in *[!0-9a-fA-F]*) bad "--salt must be hex";; esac
case $wsha in *[!0-9a-f]*) bad "--sha256 must be lowercase hex";; esac
case $drop in 0|1) ;; *) bad "--drop must be 0 or 1";; esac
[ "$(printf "%s" "$envs" | grep -c "")" = "$(printf "%s" "$envkeys" | grep -c "")" ] \
  || bad "every --env needs its --env-keys"

# svc ACTION [UNIT...] (default: the server's unit; `journal UNIT SINCE`): systemd, or the tests' stand-in
svc() {
  sv_a=$1; shift; [ $# -gt 0 ] || [ "$sv_a" = daemon-reload ] || set -- "$service"
  sv_t=""; case $sv_a in start|stop|restart|try-restart) sv_t="timeout $W";; esac
  if [ -n "${HSI_REDIS_SERVICE_CTL:-}" ]; then $sv_t "$HSI_REDIS_SERVICE_CTL" "$sv_a" "$@"; return; fi
  case $sv_a in
    journal) journalctl -u "$1" --since "$2" -o cat --no-pager 2>/dev/null;;
    show) systemctl show -p LoadState,ActiveState,UnitFileState "$@" 2>/dev/null;;
    is-failed) systemctl is-failed --quiet "$@";;
    *) $sv_t systemctl "$sv_a" "$@" 2>/dev/null;;
  esac
}

# -- reaching the server: REACH_AWK prints how a client on the host reaches the server a config
# starts, as shell assignments (a value with characters outside the safe set keeps its default)
REACH_AWK='
function arg(s) {
  sub(/^[ \t]*[^ \t]+[ \t]*/, "", s)
  if (s ~ /^"/) { s = substr(s, 2); sub(/".*/, "", s) } else sub(/[ \t].*/, "", s)
  return s
}
function out(k, v) { if (v ~ /^[-A-Za-z0-9_.\/:@%+=, ]*$/) print k "=\"" v "\"" }
{ d = tolower($1) }
d == "port" { p = arg($0) } d == "tls-port" { t = arg($0) } d == "bind" { b = arg($0) }
d == "tls-ca-cert-file" { c = arg($0) } d == "dir" { r = arg($0) } d == "logfile" { l = arg($0) }
d == "appendonly" { a = tolower(arg($0)) } d == "dbfilename" { f = arg($0) } d == "appenddirname" { ad = arg($0) }
END {
  sub(/^-/, "", b)
  if (b == "" || b == "*" || b == "0.0.0.0") b = "127.0.0.1"; else if (b == "::" || b == "::*") b = "::1"
  if (p !~ /^[0-9]+$/) p = 6379; if (t !~ /^[0-9]+$/) t = 0
  out("r_port", p); out("r_tport", t); out("r_addr", b); out("r_ca", c); out("r_dir", r); out("r_log", l)
  out("r_aof", a == "yes" ? "yes" : "no"); out("r_dbf", f == "" ? "dump.rdb" : f); out("r_adir", ad == "" ? "appendonlydir" : ad)
}'
reach() {  # CONFIG: sets r_port r_tport r_addr r_ca r_dir r_log r_aof r_dbf r_adir; 1 when there is no such file
  r_port=6379 r_tport=0 r_addr=127.0.0.1 r_ca="" r_dir="" r_log="" r_aof=no r_dbf=dump.rdb r_adir=appendonlydir
  [ -f "$1" ] || return 1
  eval "$(awk "$REACH_AWK" "$1")"
}
c_addr=127.0.0.1 c_port=6379 c_tls=0 c_ca="" c_cert=1 c_user="" c_pass="" c_sock="" c_crt=$sd/tls/client.crt c_key=$sd/tls/client.key
use() {  # CONFIG: talk to that config's server (its plain port, else its TLS port)
  reach "$1" || return 1
  c_addr=$r_addr c_ca=$r_ca c_port=$r_port c_tls=0
  [ "$r_port" -gt 0 ] || c_port=$r_tport c_tls=1
}
# ask ARGS...: the one way to the CLI: bounded (--tls against a plain port hangs), the password only in
# REDISCLI_AUTH. It exits 0 on WRONGPASS: callers judge the replies. c_sock: a unix socket instead.
ask() {
  if [ "$c_tls" = 1 ]; then
    if [ "$c_cert" = 1 ] && [ -s "$c_crt" ] && [ -s "$c_key" ]; then
      set -- --cert "$c_crt" --key "$c_key" "$@"
    fi
    set -- --tls --cacert "$c_ca" "$@"
  fi
  [ -z "$c_user" ] || set -- --user "$c_user" "$@"
  if [ -n "$c_sock" ]; then set -- -s "$c_sock" "$@"; else set -- -h "$c_addr" -p "$c_port" "$@"; fi
  if [ -n "$c_pass" ]; then
    REDISCLI_AUTH=$c_pass timeout "$T" "$cli" --no-auth-warning "$@" 2>&1
  else
    timeout "$T" "$cli" --no-auth-warning "$@" 2>&1
  fi | tr -d '\r'
}
ask_long() { T=$((W * 10)); ask "$@"; }  # a transfer (run in a subshell: T stays as it was)
answers() {  # REPLY: whether a Redis server said it (not refused, reset or timed out)
  case $1 in PONG|NOAUTH*|WRONGPASS*|ERR*|LOADING*|NOPERM*|BUSY*|MASTERDOWN*|"AUTH failed"*) ;; *) return 1;; esac
}
lgc() { printf '%s/last-good/%s' "$sd" "${config##*/}"; }
# find_now: the server where it runs NOW (a new port must not make pre-change steps ask the new address):
# the last good config first while a restart is pending, --config, the last good config. Sets c_*,
# noauth (PING without a password) and now_cfg ("" when none answers).
find_now() {
  if [ -f "$sd/restart-pending" ]; then set -- "$(lgc)" "$config"; else set -- "$config" "$(lgc)"; fi
  fn_seen=
  for fn_f; do
    use "$fn_f" || continue
    case $fn_seen in *"|$c_addr $c_port $c_tls|"*) continue;; esac
    fn_seen="$fn_seen|$c_addr $c_port $c_tls|"
    c_user="" c_pass=""; noauth=$(ask ping | head -n 1)
    if answers "$noauth"; then now_cfg=$fn_f; return 0; fi
  done
  use "$config"; now_cfg=; noauth=${noauth:--}; return 1
}
# pick: the first credential the server answers PONG to: cli.auth as the admin, as default, the last
# good cli.auth so, none. Sets c_user c_pass ident (refused: none did) p_reply (the first answer).
pick() {
  p_reply=
  for pk_f in "$sd/cli.auth" "$sd/last-good/cli.auth" ''; do
    [ -z "$pk_f" ] || [ -s "$pk_f" ] || continue
    [ "$pk_f" != "$sd/last-good/cli.auth" ] || ! same_file "$pk_f" "$sd/cli.auth" || continue
    c_pass=""; [ -z "$pk_f" ] || c_pass=$(cat "$pk_f")
    for pk_u in "$admin" default; do
      c_user=$pk_u; [ "$pk_u" != default ] || c_user=
      [ -n "$pk_f" ] || { c_user=""; pk_u=none; }
      pk_r=$(ask ping); [ -n "$p_reply" ] || p_reply=$(printf "%s\n" "$pk_r" | head -n 1)
      [ "$pk_r" != PONG ] || { ident=$pk_u; return 0; }
      [ -n "$pk_f" ] || break
    done
  done
  ident=refused; return 1
}
same_file() { [ -f "$1" ] && [ -f "$2" ] && [ "$(sha256sum < "$1")" = "$(sha256sum < "$2")" ]; }
count() {  # "all persistent" keys over every database
  ask info keyspace | awk -F'[:=,]' '/^db[0-9]+:/ { k += $3; e += $5 } END { print k + 0, k - e }'
}
field() { printf "%s\n" "$1" | sed -n "s/^$2://p"; }
# wait_up: until the server at c_* answers (LOADING: wait on); 1 when its unit failed or --wait ran out
wait_up() {
  wu_i=0
  while [ "$wu_i" -lt $((W * 10)) ]; do
    wu_r=$(ask ping | head -n 1)
    case $wu_r in
      LOADING*) ;;
      *) answers "$wu_r" && return 0; svc is-failed >/dev/null 2>&1 && return 1;;
    esac
    wu_i=$((wu_i + 1)); sleep 0.1
  done
  return 1
}

# -- files (issue 9 items 2, 8). chain DIR: w=root when every directory from / to DIR is root's and
# writable by no one else; w=USER when a user owns one (the write runs as that user: root never touches
# a path a user controls); w=unsafe (w_why) for a group/other-writable one (sticky: only above an entry
# it holds), root's inside a user's, or two users. Root's links are followed (a user's: the user's
# problem). w_dir: the deepest existing directory (the writer creates the rest).
chain() {
  ch_p=$1 ch_hops=0
  while :; do
    set -- /; ch_q=; ch_r=${ch_p#/}
    while [ -n "$ch_r" ]; do
      ch_c=${ch_r%%/*}; case $ch_r in */*) ch_r=${ch_r#*/};; *) ch_r=;; esac
      [ -z "$ch_c" ] || { ch_q=$ch_q/$ch_c; set -- "$@" "$ch_q"; }
    done
    w=root w_why="" w_dir=/ ch_sticky=0 ch_again=0
    IFS=$NL
    for ch_l in $(stat -c "%u:%U:%f:%n" "$@" 2>/dev/null); do
      IFS=$DIFS
      ch_u=${ch_l%%:*}; ch_l=${ch_l#*:}; ch_n=${ch_l%%:*}; ch_l=${ch_l#*:}; ch_f=${ch_l%%:*}; ch_d=${ch_l#*:}
      ch_t=$((0x$ch_f & 0170000)); ch_m=$((0x$ch_f & 07777))
      if [ "$ch_t" = $((0120000)) ]; then
        [ "$w" = root ] || break
        [ "$ch_hops" -lt 8 ] || { w=unsafe w_why="too many symbolic links under $ch_d"; break; }
        ch_p=$(readlink -f "$ch_d")${ch_p#"$ch_d"}; ch_hops=$((ch_hops + 1)) ch_again=1; break
      fi
      [ "$ch_t" = $((040000)) ] || { w=unsafe w_why="$ch_d is not a directory"; break; }
      if [ "$ch_u" != 0 ]; then
        if [ "$w" = root ]; then w=$ch_n
        elif [ "$w" != "$ch_n" ]; then w_why="$ch_d belongs to $ch_n inside a directory $w controls" w=unsafe; break
        fi
      elif [ "$w" != root ]; then w_why="$ch_d belongs to root inside a directory $w controls" w=unsafe; break
      fi
      if [ $((ch_m & 022)) != 0 ]; then
        [ $((ch_m & 01000)) != 0 ] || { w=unsafe w_why="$ch_d is writable by its group or others"; break; }
        ch_sticky=1
      else ch_sticky=0
      fi
      w_dir=$ch_d
    done
    IFS=$DIFS
    [ "$ch_again" = 1 ] || break
  done
  [ "$w" = unsafe ] || [ "$ch_sticky" = 0 ] || { w=unsafe w_why="$w_dir is writable by others"; }
}
staged() {  # DIR: DIR is a plain directory others cannot write, on the state directory's filesystem,
  # and every directory above it is root's: a rename into it can be neither redirected nor followed
  [ -d "$1" ] && [ ! -L "$1" ] && [ -n "$tmp" ] || return 1
  set -- "$1" $(stat -c "%a %d" "$1" "$tmp")
  [ $((0$2 & 002)) = 0 ] && [ "$3" = "$5" ] || return 1
  sg_w=$w sg_why=$w_why sg_d=$w_dir; chain "${1%/*}/"
  [ "$w" = root ] && return 0
  w=$sg_w w_why=$sg_why w_dir=$sg_d; return 1
}
as_w() {  # CMD...: run CMD as the writer $w
  [ "$w" != root ] || { "$@"; return; }
  aw_g=$(id -gn "$w") || return 1
  if command -v setpriv >/dev/null 2>&1; then setpriv --reuid="$w" --regid="$aw_g" --init-groups "$@"
  else runuser -u "$w" -- "$@"
  fi
}
mkdirs() {  # DIR: create what is missing below w_dir (root 0755, or as the user who controls it)
  md_r=${1#"$w_dir"} md_q=${w_dir%/}
  while [ -n "$md_r" ]; do
    md_r=${md_r#/}; md_c=${md_r%%/*}; case $md_r in */*) md_r=${md_r#*/};; *) md_r=;; esac
    [ -n "$md_c" ] || continue
    # root's new directories are 0755 (e.g. /opt/hsi/backend); a user's keep others out (0750)
    md_q=$md_q/$md_c; [ -d "$md_q" ] || as_w mkdir -m "$([ "$w" = root ] && echo 0755 || echo 0750)" "$md_q" || return 1
  done
}
# WRITER OP(check|write) KIND(file|merge) MODE OWNER GROUP(- keeps, ?G: if allowed) TARGET MERGE_AWK,
# stdin the content or wanted lines, run as the writer: prints same|differs|changed, never follows a link
WRITER='set -euf; cd /; umask 077
op=$1 kind=$2 mode=$3 own=$4 grp=$5 t=$6 d=${6%/*}
[ -n "$d" ] || d=/
# a whole file that is a link is replaced by the file (the rename replaces the link, never its target);
# a merge, which reads the file, refuses one
if { [ -L "$t" ] && [ "$kind" = merge ]; } || { [ ! -L "$t" ] && [ -e "$t" ] && [ ! -f "$t" ]; }; then
  echo "hsi-redis: $t is a symbolic link or not a regular file: refused (never followed)" >&2; exit 1; fi
new=$(mktemp "${8:-$d}/.${t##*/}.hsi-XXXXXX"); trap "rm -f \"\$new\"" EXIT
if [ "$kind" = merge ]; then cur=/dev/null; [ ! -f "$t" ] || cur=$t; awk -v f="$t" "$7" - "$cur" > "$new"
else cat > "$new"; fi
same=0; [ -L "$t" ] || [ ! -f "$t" ] \
  || [ "$(sha256sum < "$new")" != "$(dd if="$t" iflag=nofollow,nonblock status=none 2>/dev/null | sha256sum)" ] || same=1
if [ "$op" = check ]; then [ $same = 1 ] && echo same || echo differs; exit 0; fi
if [ $same = 1 ]; then
  set -- $(stat -c "%a %U %G" "$t")
  case $grp in -|\?*) g=$3;; *) g=$grp;; esac
  if [ "$1" = "$mode" ] && { [ "$own" = - ] || [ "$own" = "$2" ]; } && [ "$g" = "$3" ]; then echo same; exit 0; fi
fi
[ "$own" = - ] || chown "$own" "$new"
case $grp in -) ;; \?*) chgrp "${grp#?}" "$new" 2>/dev/null || :;; *) chgrp "$grp" "$new";; esac
chmod "$mode" "$new"; mv -fT "$new" "$t"; trap - EXIT; echo changed'
# The .env merge. The file is parsed as python-dotenv (the backend's reader) parses it, binding by
# binding (a quoted value may span lines; a backslash escapes any character). A binding of an owned key
# on one line is replaced in place, later ones dropped, missing keys appended; every other line is kept
# byte for byte. A replaced line keeps its line ending, appended lines take the last line's. Refused
# (nothing changed), where python-dotenv and the merge, or another reader, could disagree: a quoted owned
# key, an owned key without `=`, an owned value spanning lines, an owned key assigned inside another
# key's multi-line value, whitespace other than blanks and tabs around an owned key (form feed, vertical
# tab, Unicode spaces: python-dotenv skips them), a quote that never closes (the appended lines would
# close it), a bare carriage return (python-dotenv ends the line there). Input: the wanted lines, then
# the file; with scan="K1 K2" only the file: prints `crlf 0|1`, `key KEY LINE`, `bad LINE REASON`.
MERGE_AWK='
function cl(s, q,   i, c) {
  for (i = 1; i <= length(s); i++) { c = substr(s, i, 1); if (c == "\\") i++; else if (c == q) return i }
  return 0
}
function adv(k,   t) { t = substr(T, p, k); p += k; ln += gsub(/\n/, "", t) }
function at(re) { return match(substr(T, p), re) }
function odd() { if (substr(T, p, RLENGTH) ~ /\f/) o = 1; adv(RLENGTH) }
function own(s,   k) {
  sub(/^[ \t\f]*(export[ \t\f]+)?["\047]?/, "", s)
  if (!match(s, /^[^=# \t\f"\047]+/)) return 0
  k = substr(s, 1, RLENGTH)
  return substr(s, RLENGTH + 1) ~ /^["\047]?[ \t\f]*=/ && k in want
}
scan == "" && FILENAME == ARGV[1] { k = $0; sub(/=.*/, "", k); want[k] = $0; order[++nw] = k; next }
{ L[++n] = $0 }
END {
  sq = "\047"; dq = "\""
  if (scan != "") { nw = split(scan, order, " "); for (i = 1; i <= nw; i++) want[order[i]] = "" }
  for (i = 1; i <= n; i++) {
    s = L[i]; sub(/\r$/, "", s); if (index(s, "\r")) why[i] = "carriage-return"
    gsub(/\302[\205\240]|\341\232\200|\342\200[\200-\212\250\251\257]|\342\201\237|\343\200\200|[\v\034-\037]/, "\f", s)
    P[i] = s; T = T s "\n"
  }
  sub(/^\357\273\277/, "", T); p = 1; ln = 1
  while (p <= length(T)) {
    at("^[ \t\f\n]*"); w = substr(T, p, RLENGTH); adv(RLENGTH)
    if (p > length(T)) break
    sub(/.*\n/, "", w); o = w ~ /\f/; b = ln; k = ""; qk = 0; e = 0; v = 0
    if (at("^export[ \t\f]+")) odd()
    c = substr(T, p, 1)
    if (c == "#") k = "#"
    else if (c == sq) { if (at("^" sq "[^" sq "]+" sq)) { k = substr(T, p + 1, RLENGTH - 2); qk = 1; adv(RLENGTH) } else e = 2 }
    else if (at("^[^=# \t\f\n]+")) { k = substr(T, p, RLENGTH); adv(RLENGTH) } else e = 1
    if (!e && k != "#") {
      at("^[ \t\f]*"); odd()
      if (substr(T, p, 1) == "=") {
        v = 1; at("^=[ \t\f]*"); x = RLENGTH; odd(); c = substr(T, p, 1)
        if (c == sq || c == dq) { j = cl(substr(T, p + 1), c); if (j) adv(j + 1); else e = 2 }
        else if (x == 1 || c != "#") { at("^[^\n]*"); adv(RLENGTH) }
      }
    }
    if (!e) { if (at("^[ \t\f]*#[^\n]*")) adv(RLENGTH); if (at("^[ \t\f]*\n")) adv(RLENGTH); else e = 1 }
    if (e) { at("^[^\n]*\n?"); adv(RLENGTH) }
    z = ln - 1
    if (!qk && k ~ /^".+"$/) { k = substr(k, 2, length(k) - 2); qk = 1 }
    if (e == 2) why[b] = "unterminated-quote"
    else if (k in want) {
      if (qk) why[b] = "quoted-key"; else if (z > b) why[b] = "multi-line-value"
      else if (!v && !e) why[b] = "no-equals"; else if (o) why[b] = "odd-whitespace"
      else if (!(b in why)) owned[b] = k
    }
    for (i = b + 1; i <= z; i++) if (own(P[i])) why[i] = "inside-multi-line-value"
  }
  if (scan != "") {
    print "crlf", (L[n] ~ /\r$/) ? 1 : 0
    for (i = 1; i <= n; i++) if (i in why) print "bad", i, why[i]; else if (i in owned) print "key", owned[i], i
    exit 0
  }
  for (i = 1; i <= n; i++) if (i in why) {
    printf "hsi-redis: %s line %d: the deploy cannot merge this line (%s): nothing was changed\n", f, i, why[i] > "/dev/stderr"
    bad = 1
  }
  if (bad) exit 3
  for (i = 1; i <= n; i++) {
    if (!(i in owned)) print L[i]
    else if (!(owned[i] in done)) { print want[owned[i]] (L[i] ~ /\r$/ ? "\r" : ""); done[owned[i]] = 1 }
  }
  e = (L[n] ~ /\r$/) ? "\r" : ""
  for (i = 1; i <= nw; i++) if (!(order[i] in done)) print want[order[i]] e
}'

# -- bundles: `file MODE USER GROUP FLAGS PATH` | `merge FLAGS USER GROUP PATH`, base64 lines, `.`; `end`
BUNDLE_AWK='
BEGIN { n = 0 }
function fail(m) { print "line " NR ": " m; bad = 1; exit 1 }
body { if ($0 == ".") { body = 0; close(f); next }
       if ($0 !~ /^[A-Za-z0-9+\/=]*$/) fail("not base64"); print > f; next }
$0 == "" { next }
done { fail("text after the end line") }
$0 == "end" { done = 1; next }
{
  if ($1 == "file" && match($0, /^file [0-7][0-7][0-7][0-7]? [^ ]+ [^ ]+ [^ ]+ \//)) { m = $2; u = $3; g = $4; fl = $5 }
  else if ($1 == "merge" && match($0, /^merge [^ ]+ [^ ]+ [^ ]+ \//)) { m = "-"; fl = $2; u = $3; g = $4 }
  else fail("not an entry header")
  p = substr($0, RLENGTH)
  if (("/" p "/") ~ /\/\.\.?\// || p ~ /[ \t]$/) fail("path not absolute and plain")
  if (u !~ /^([A-Za-z0-9_][A-Za-z0-9_.-]*|-)$/ || g !~ /^([A-Za-z0-9_][A-Za-z0-9_.-]*|-)$/) fail("bad owner")
  nf = split(fl, a, ","); for (i = 1; i <= nf; i++) if (a[i] !~ /^(restart|after|unit|units|repo|owndir|-)$/) fail("bad flag " a[i])
  print n, $1, m, u, g, fl, p > (dir "/m"); f = dir "/" n ".b64"; printf "" > f; n++; body = 1
}
END {
  if (bad) exit 1
  if (body) { print "truncated: an entry has no closing ."; exit 1 }
  if (NR > 0 && !done) { print "truncated: no end line"; exit 1 }
}'
tmp=
mk_tmp() {  # a root-only scratch directory inside the state directory, removed on exit
  [ -z "$tmp" ] || return 0
  chain "$sd"
  [ "$w" = root ] || die "$sd must be a root-only directory ($w${w_why:+: $w_why})"
  [ -d "$sd" ] || install -d -m 0700 "$sd" || die "cannot create $sd"
  find "$sd" -maxdepth 1 -name '.tmp.*' -mmin +60 -exec rm -rf {} + 2>/dev/null  # a killed run's
  tmp=$(mktemp -d "$sd/.tmp.XXXXXX") || die "cannot create a temporary directory in $sd"
  trap 'rm -rf "$tmp"' EXIT; trap 'exit 1' HUP INT TERM
}
read_bundle() {  # stdin's bundle decoded into $tmp before anything changes: a bad or cut one changes nothing
  mk_tmp; : > "$tmp/m"
  cat > "$tmp/in" || die "could not read the bundle"
  rb_why=$(awk -v dir="$tmp" "$BUNDLE_AWK" "$tmp/in") || die "the bundle is malformed (${rb_why:-?}): nothing was changed"
  rb_n=0
  while [ -f "$tmp/$rb_n.b64" ]; do
    base64 -d < "$tmp/$rb_n.b64" > "$tmp/$rb_n" 2>/dev/null || die "bundle entry $rb_n is not base64: nothing was changed"
    rb_n=$((rb_n + 1))
  done
}
flag() { case ,$e_f, in *,"$1",*) return 0;; esac; return 1; }
is_rfile() {  # the current entry is a file the server reads
  flag restart && return 0
  for ir in $rfiles; do [ "$ir" = "$e_p" ] && return 0; done
  return 1
}
# entry OP [SOURCE]: check or write the entry e_* (content: SOURCE or its decoded file) as the writer of
# its directory. Sets e_res; 1 (said why) when refused.
entry() {
  en_op=$1 en_src=${2:-$tmp/$e_i} en_d=${e_p%/*}; [ -n "$en_d" ] || en_d=/
  chain "$en_d"; en_stage="" en_r=$ch_p  # en_r: through the links root controls (missing parts made there)
  # a whole file in a directory only the server's user or group controls (/etc/redis on Debian), its
  # parents root's: staged in root's own directory and renamed in, with its owner and mode already set
  if [ "$w" != root ] && [ "$e_k" = file ] && staged "$en_d"; then w=root en_stage=$tmp; fi
  [ "$w" != unsafe ] || { say "$e_p: $w_why: refused, nothing written"; return 1; }
  [ ! -L "$e_p" ] || [ "$e_k" = file ] || { say "$e_p is a symbolic link: refused (it is never followed)"; return 1; }
  en_named=$e_u
  if [ "$e_k" = merge ]; then
    # an existing file keeps owner, group and mode (others' and exec bits dropped); a new one is the
    # writer's, 0600 (0640 for a named group)
    en_m=600 en_o=$w en_g=-; [ "$e_g" = - ] || en_m=640
    if [ -f "$e_p" ]; then
      set -- $(stat -c "%a %U %G" "$e_p"); en_m=$(printf "%o" $((0$1 & 0660))) en_o=$2 en_g="?$3"
      [ "$w" = root ] || [ "$2" = "$w" ] || { say "$e_p belongs to $2, but $w controls its directory: written as $w, it would be taken from its owner; run chown $w $e_p (or make the directory root's): refused"; return 1; }
    fi
    [ "$e_u" = - ] || en_o=$e_u; [ "$e_g" = - ] || en_g=$e_g
  else
    en_m=$(printf "%o" $((0$e_m))) en_o=$e_u en_g=$e_g
  fi
  if [ "$w" != root ]; then
    [ "$en_named" = - ] || [ "$en_named" = "$w" ] \
      || { say "$e_p: the directory $w_dir belongs to $w, so the file would belong to $w, not $en_named: refused"; return 1; }
    en_o=-
  fi
  # a named owner without a group: the owner's login group
  if [ "$e_u" != - ] && [ "$e_g" = - ]; then en_g=$(id -gn "$e_u" 2>/dev/null) || en_g=-; fi
  case $en_g in '?'|'?-') en_g=-;; esac
  if [ "$en_op" = write ]; then
    en_new=0; [ -d "$en_r" ] || en_new=1
    mkdirs "$en_r" || { say "$e_p: cannot create $en_d"; return 1; }
    # owndir: a client's own directory (its TLS files), made by root: given to the file's owner, 0750
    if [ "$en_new" = 1 ] && [ "$w" = root ] && flag owndir && [ "$en_o" != - ]; then
      en_og=$en_o; [ "$en_g" = - ] || en_og=$en_o:$en_g
      chown "$en_og" "$en_r" 2>/dev/null && chmod 0750 "$en_r" || { say "$en_d: cannot give it to $en_o"; return 1; }
    fi
  elif [ ! -d "$en_d" ]; then e_res=differs; return 0
  fi
  e_res=$(as_w sh -c "$WRITER" hsi-redis-writer "$en_op" "$e_k" "$en_m" "$en_o" "$en_g" "$e_p" "$MERGE_AWK" \
    "$en_stage" < "$en_src") \
    || { say "$e_p: not written"; return 1; }
}
unit_changed=0 repo_changed=0 wrote=0 units_changed=0
write_entries() {  # PHASE (now: all but `after` entries; after; all): prints changed=PATH
  [ -s "$tmp/m" ] || return 0
  while read -r e_i e_k e_m e_u e_g e_f e_p <&3; do
    if flag after; then [ "$1" != now ] || continue; else [ "$1" != after ] || continue; fi
    entry write || return 1
    [ "$e_res" = changed ] || continue
    echo "changed=$e_p"; wrote=1
    ! flag unit || unit_changed=1
    ! flag repo || repo_changed=1
    ! flag units || units_changed=1
  done 3< "$tmp/m"
}
place() {  # SOURCE TARGET MODE OWNER GROUP: one file, written link-safely
  mk_tmp; e_k=file e_p=$2 e_m=$3 e_u=$4 e_g=$5 e_f=-; entry write "$1"
}
private() { cp "$1" "$2.tmp" && chmod 600 "$2.tmp" && mv -f "$2.tmp" "$2"; }  # SRC DST in root's own directory

# -- data safety
mtime() { stat -c %Y "$1" 2>/dev/null || echo -; }
aof_mtime() {  # newest file of the AOF in DATADIR, or -
  am=$(find "$1/appendonlydir" "$1/appendonly.aof" -type f -exec stat -c %Y {} + 2>/dev/null | sort -n | tail -n 1)
  echo "${am:--}"
}
save_last_good() {  # the config and credential the server runs with now, root 0700/0600
  install -d -m 0700 "$sd" "$sd/last-good" && private "$config" "$(lgc)" || return 1
  if [ -s "$sd/cli.auth" ]; then private "$sd/cli.auth" "$sd/last-good/cli.auth"; else rm -f "$sd/last-good/cli.auth"; fi
}
keep_last_good() {  # save them when the server runs healthy on the current config (no restart pending)
  [ ! -f "$sd/restart-pending" ] && find_now && [ "$now_cfg" = "$config" ] && pick || return 0
  same_file "$config" "$(lgc)" && { [ ! -s "$sd/cli.auth" ] || same_file "$sd/cli.auth" "$sd/last-good/cli.auth"; } \
    && return 0
  save_last_good || die "could not save the last good config in $sd/last-good"
  echo last_good=saved
}
restore_files() {  # the last good config and credential back in place
  [ -s "$(lgc)" ] || return 1
  set -- $(stat -c "%a %U %G" "$config" 2>/dev/null || echo "640 root $sgroup")
  place "$(lgc)" "$config" "$1" "$2" "$3" || return 1
  if [ -s "$sd/last-good/cli.auth" ]; then private "$sd/last-good/cli.auth" "$sd/cli.auth"; else rm -f "$sd/cli.auth"; fi
}
# secure_aof NEWAOF: before a restart turns AOF on, the data must be in an AOF (FACTS.md: data only in
# dump.rdb + appendonly yes + restart = an EMPTY server, which then overwrites dump.rdb)
secure_aof() {
  [ "$1" = yes ] || return 0
  if ! find_now; then
    # stopped: it must start on the data it really has. An AOF at least as new as dump.rdb holds it all;
    # otherwise (no AOF, or one older than the dump: AOF turned off at run time, a dump put back by hand)
    # the dump does, and a start with AOF on would load the AOF instead (an empty or older dataset)
    reach "$config"; sa_dd=${datadir:-$r_dir}; sa_rdb=$(mtime "$sa_dd/dump.rdb"); sa_aof=$(aof_mtime "$sa_dd")
    [ "$sa_rdb" != - ] || return 0
    # (find -newer compares whole timestamps: within one second, seconds would tie)
    [ "$sa_aof" = - ] || [ -z "$(find "$sa_dd/appendonlydir" "$sa_dd/appendonly.aof" -type f -newer "$sa_dd/dump.rdb" \
      2>/dev/null | head -n 1)" ] || return 0
    if [ "$sa_aof" != - ]; then
      sa_what="$sa_dd/dump.rdb (written $(date -d "@$sa_rdb" "+%F %T")) is newer than the AOF in $sa_dd (last written $(date -d "@$sa_aof" "+%F %T"))"
    else sa_what="its data is only in $sa_dd/dump.rdb"
    fi
    # the config it starts on: the last good one while a restart is pending (the file on disk is new)
    sa_cfg=$config; [ ! -f "$sd/restart-pending" ] || [ ! -s "$(lgc)" ] || sa_cfg=$(lgc)
    mk_tmp; cp -p "$config" "$tmp/config.before" 2>/dev/null || : > "$tmp/config.before"
    sa_mark=0; [ -f "$sd/restart-pending" ] || sa_mark=1
    set -- $(stat -c "%a %U %G" "$config" 2>/dev/null || echo "640 root $sgroup")
    # once, with AOF off: its config with `appendonly no` last (the last directive wins), put back after
    { cat "$sa_cfg"; echo "appendonly no"; } > "$tmp/config.rdb"
    : > "$sd/restart-pending" || die "cannot write $sd/restart-pending"
    place "$tmp/config.rdb" "$config" "$1" "$2" "$3" >/dev/null || die "cannot write $config"
    bounce start
    if ! { find_now && wait_up && find_now; }; then
      reasons; svc stop >/dev/null 2>&1
      place "$tmp/config.before" "$config" "$1" "$2" "$3" >/dev/null
      [ "$sa_mark" = 0 ] || rm -f "$sd/restart-pending"
      die "$service is stopped and $sa_what; it does not start on its config $sa_cfg (see above), so its data cannot be moved into an AOF: nothing was changed. Fix that config (or start it once by hand) and run again"
    fi
    place "$tmp/config.before" "$config" "$1" "$2" "$3" >/dev/null || die "cannot put $config back"
    [ "$sa_mark" = 0 ] || rm -f "$sd/restart-pending"
    echo started=1
  fi
  pick || die "the running server refuses the deploy's credentials (without a password: '$noauth', with $sd/cli.auth: '$p_reply'); its data cannot be moved into an AOF safely, so nothing was changed. Put its current password in $sd/cli.auth (root, 0600) and run again"
  sa_i=$(ask info persistence)
  [ "$(field "$sa_i" aof_enabled)" != 1 ] || return 0
  # nothing in memory and no AOF on disk (a fresh install): nothing to move, and nothing stale to load
  set -- $(count); [ "$1" != 0 ] || [ "$(aof_mtime "${datadir:-$(ask config get dir | sed -n 2p)}")" != - ] || return 0
  sa_e=$(field "$sa_i" aof_last_bgrewrite_status) sa_n=0
  sa_r=$(ask config set appendonly yes | head -n 1)
  [ "$sa_r" = OK ] || die "CONFIG SET appendonly yes failed: $sa_r; the config was not changed"
  # until the rewrite is done; a failed one is retried by the server (stop on the first failure)
  while sa_i=$(ask info persistence); sa_s=$(field "$sa_i" aof_last_bgrewrite_status)
    [ "$(field "$sa_i" aof_rewrite_in_progress)$(field "$sa_i" aof_rewrite_scheduled)" != 00 ]; do
    [ "$sa_s$sa_e$(field "$sa_i" aof_rewrite_in_progress)" != errok0 ] || break
    sa_n=$((sa_n + 1)); [ "$sa_n" -lt 6000 ] || { sa_s=timeout; break; }; sleep 0.1
  done
  [ "$sa_s" = ok ] || { ask config set appendonly no >/dev/null
    die "the AOF rewrite failed ($sa_s; disk full?): AOF is off again, the server keeps running, the config was not changed"; }
  echo aof=enabled
}
# snapshot: memory to disk before a restart. BGSAVE, again while another child (an AOF rewrite, a save)
# runs, then its own outcome: a failed save moves neither LASTSAVE nor rdb_saves, so waiting for them hangs
snapshot() {
  sn_n=0
  while sn_r=$(ask bgsave | head -n 1); [ "$sn_r" != "Background saving started" ]; do
    case $sn_r in *"in progress"*|*"child process"*) ;; *) return 1;; esac
    sn_n=$((sn_n + 1)); [ "$sn_n" -lt 6000 ] || return 1; sleep 0.1
  done
  while sn_i=$(ask info persistence); [ "$(field "$sn_i" rdb_bgsave_in_progress)" != 0 ]; do
    sn_n=$((sn_n + 1)); [ "$sn_n" -lt 6000 ] || return 1; sleep 0.1
  done
  [ "$(field "$sn_i" rdb_last_bgsave_status)" = ok ]
}
# sed: hides the arguments of the config line a fatal error quotes (">>> 'directive args'") and of any
# password-bearing directive
REDACT='s/^(.*>>> '"'"'[^ '"'"']*).*/\1 <arguments hidden>'"'"'/; s/((requirepass|masterauth|masteruser|tls-key-file-pass|tls-client-key-file-pass)[[:space:]]+).*/\1<hidden>/I; s/(user[[:space:]]+[^[:space:]]+)[[:space:]].*[>#<].*/\1 <hidden>/I'
# systemd's own lines around restarts say nothing about why the server failed
NOISE='Scheduled restart job|Deactivated successfully|^Stopped |^Starting |^Started |Start request repeated|Failed with result|^Failed to start '
bounce() {  # ACTION: reset-failed, then start or restart, noting where the log and journal stand
  reach "$config"; bo_l=${log:-$r_log} bo_z=0; [ ! -f "$bo_l" ] || bo_z=$(wc -c < "$bo_l")
  bo_t=$(date '+%Y-%m-%d %H:%M:%S'); svc reset-failed >/dev/null 2>&1; svc "$1" >/dev/null 2>&1
}
reasons() {  # why the server did not come up: its log and journal since the last bounce, redacted
  [ ! -f "$bo_l" ] || tail -c +$((bo_z + 1)) "$bo_l" | grep -v '^$' | tail -n 3 | sed -E "$REDACT" | sed 's/^/log: /' >&2
  svc journal "$service" "$bo_t" 2>/dev/null | grep -v '^$' | grep -v -E "$NOISE" | awk '!seen[$0]++' | tail -n 6 \
    | sed -E "$REDACT" | sed 's/^/journal: /' >&2
}
# do_restart: snapshot, restart, check; back to the last good config when the new one does not serve
do_restart() {
  dr_b=- dr_bp=- dr_old=
  if find_now && pick; then
    set -- $(count); dr_b=$1 dr_bp=$2
    dr_old=$(ask config get dir | sed -n 2p)
    # an empty server has nothing to save (a fresh install: the restart is not slowed by a snapshot)
    [ "$dr_b" = 0 ] || snapshot || { restore_files && dr_b="put back from the last good copy" || dr_b="left as written"
      die "the snapshot before the restart failed (disk full?): not restarted, the config $dr_b"; }
  elif reach "$(lgc)" || reach "$config"; then dr_old=$r_dir
  fi
  reach "$config"; dr_new=$r_dir
  case $dr_new in /*) ;; *) dr_new=;; esac
  case $dr_old in /*) ;; *) dr_old=;; esac
  if [ -n "$dr_old" ] && [ -n "$dr_new" ] && [ "${dr_old%/}" != "${dr_new%/}" ]; then move_data "${dr_old%/}" "${dr_new%/}"; fi
  bounce restart
  use "$config"; c_user=$admin; c_pass=$(cat "$sd/cli.auth" 2>/dev/null)
  [ -n "$c_pass" ] || c_user=
  if wait_up && [ "$(ask ping)" = PONG ]; then
    set -- $(count)
    save_last_good; rm -f "$sd/restart-pending"
    [ "$dr_bp" = - ] || [ "$2" -ge "$dr_bp" ] \
      || die "keys without a TTL dropped across the restart: $dr_bp before, $2 after ($dr_b/$1 with TTL keys); check the data"
    echo "restarted=$dr_b $1"; return 0
  fi
  reasons
  [ -s "$(lgc)" ] || die "$service does not answer PING after the restart with the new config, and there is no last good config to restore"
  restore_files || die "$service does not answer PING with the new config, and the last good config could not be put back"
  bounce restart; use "$config"
  if wait_up && pick; then
    set -- $(count); rm -f "$sd/restart-pending"
    die "$service did not answer PING with the new config; rolled back to the last good config, which serves $1 keys (before: $dr_b). Fix the settings and run again"
  fi
  die "$service did not answer PING with the new config, and not after restoring the last good config either: see journalctl -u $service"
}
move_data() {  # OLD NEW: the data follows the server (stopped: the files are final; NEW's are kept aside)
  chain "$2"
  case $w in root|"$suser") ;; *) die "the new data directory $2 is not safe to fill as root (${w_why:-it belongs to $w}): not restarted";; esac
  svc stop >/dev/null 2>&1 || die "could not stop $service to move its data to $2"
  # the copy runs as the server's user, who owns both directories (root never works inside them)
  { [ -d "$2" ] || { (umask 022; mkdir -p "${2%/*}") && install -d -o "$suser" -g "$sgroup" -m 0750 "$2"; }; } \
    && w=$suser && as_w sh -c 'set -e; s=$(date +%Y%m%d%H%M%S); for f in dump.rdb appendonlydir appendonly.aof; do
      if [ -e "$2/$f" ] || [ -L "$2/$f" ]; then mv "$2/$f" "$2/$f.hsi-before-$s"; fi; [ ! -e "$1/$f" ] || cp -a "$1/$f" "$2/$f"
      done' hsi-redis-move "$1" "$2" || {  # the old directory is untouched: back to the config that uses it
    restore_files && bounce start
    die "copying the data from $1 to $2 failed: not restarted on the new config; $service runs on the last good one"; }
  echo "data_moved=$1 $2"
}

# -- snapshots and restores (issue 12). A snapshot is `redis-cli --rdb` as the admin: the server's own
# replication stream, consistent, its data directory untouched; checked by this host's check tool and
# described by a manifest. A restore checks first (checksum, check tool: what this server cannot read is
# refused before anything changes), keeps the current data as *.hsi-before-TIME, starts the server on the
# backup with AOF off and turns AOF on live (the RDB-only trap, see secure_aof), compares the keys, and
# puts the previous data back when the server does not come up or the keys differ.
rdbver() { head -c 9 "$1" 2>/dev/null | sed -n 's/^REDIS0*\([0-9][0-9]*\)$/\1/p'; }
server_version() { "${cli%-cli}-server" --version 2>/dev/null | sed -n 's/^\([A-Za-z]*\) server v=\([0-9.]*\).*/\1 \2/p' | tr '[:upper:]' '[:lower:]'; }
checked() {  # FILE: this host's check tool reads it whole (sets ck_keys ck_ttl), else 1 with ck_why
  ck_o=$("${cli%-cli}-check-rdb" "$1" 2>&1) \
    && ck_keys=$(printf "%s\n" "$ck_o" | sed -n 's/^\[info\] \([0-9]*\) keys read$/\1/p') && [ -n "$ck_keys" ] \
    && ck_ttl=$(printf "%s\n" "$ck_o" | sed -n 's/^\[info\] \([0-9]*\) expires$/\1/p') && ck_ttl=${ck_ttl:-0} && return 0
  ck_why=$(printf "%s\n" "$ck_o" | sed -n '/RDB ERROR DETECTED/{n;s/^\[offset [0-9]*\] //p;}' | head -n 1)
  [ -n "$ck_why" ] || ck_why=$(printf "%s\n" "$ck_o" | grep . | tail -n 1)
  return 1
}
root_dir() {  # DIR: in directories only root writes; created 0700 when missing
  chain "$1"; [ "$w" = root ] || die "$1 must be in directories only root can write ($w${w_why:+: $w_why})"
  [ -d "$1" ] || mkdir -p "$1" || die "cannot create $1"  # (umask 077: 0700, its new parents too)
}
sn_stamp() { date -u +%Y%m%dT%H%M%SZ; }
stamps() { find "$1" -mindepth 1 -maxdepth 1 -type d -printf "%f\n" 2>/dev/null | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort -r; }
prune() {  # DIR KEEP: only the newest KEEP snapshot directories stay (named by UTC time: they sort)
  [ "$2" -gt 0 ] || return 0
  stamps "$1" | tail -n +$(($2 + 1)) | while read -r pn; do
    rm -rf "${1:?}/$pn" && echo "pruned=$pn"
  done
}
do_snapshot() {  # into --into DIR/<UTC time>/: dump.rdb and manifest.json (root only); prints snapshot.*=
  need_cli; [ -n "$into" ] || die "--into DIR is required"; root_dir "$into"
  find_now && pick && [ "$ident" = "$admin" ] \
    || die "$service does not answer as $admin ('${p_reply:-$noauth}'): no snapshot taken"
  sn_i=$(ask info server) sn_f=valkey sn_v=$(field "$sn_i" valkey_version)
  [ -n "$sn_v" ] || sn_f=redis sn_v=$(field "$sn_i" redis_version)
  set -- $(count); sn_k=$1
  sn_t=$(sn_stamp); [ ! -e "$into/$sn_t" ] || { sleep 1; sn_t=$(sn_stamp); }
  sn_d=$into/$sn_t; mkdir -m 0700 "$sn_d" || die "cannot create $sn_d"
  # the transfer of a large dataset takes longer than one command: bounded by ten times --wait
  sn_o=$(ask_long --rdb "$sn_d/dump.rdb" | tail -n 1) sn_why=
  case $sn_o in *success*) checked "$sn_d/dump.rdb" || sn_why="the check tool refuses it: $ck_why";; *) sn_why="redis-cli --rdb: $sn_o";; esac
  [ -z "$sn_why" ] || { rm -rf "$sn_d"; die "the snapshot failed ($sn_why): nothing kept"; }
  set -- "time $(printf "%s" "$sn_t" | sed 's/^\(....\)\(..\)\(..\)T\(..\)\(..\)\(..\)Z$/\1-\2-\3T\4:\5:\6Z/')" \
    "sha256 $(sha256sum < "$sn_d/dump.rdb" | cut -c1-64)" "size $(stat -c %s "$sn_d/dump.rdb")" "flavour $sn_f" \
    "version $(printf "%s" "$sn_v" | tr -cd '0-9A-Za-z.+~-')" "rdb_version $(rdbver "$sn_d/dump.rdb")" \
    "keys $ck_keys" "keys_with_ttl $ck_ttl" "server_keys $sn_k"
  { printf '{"format": "hsi-redis-snapshot 1", "file": "dump.rdb"'
    for sn_kv; do
      case ${sn_kv%% *} in time|sha256|flavour|version) printf ', "%s": "%s"' "${sn_kv%% *}" "${sn_kv#* }";;
        *) printf ', "%s": %s' "${sn_kv%% *}" "${sn_kv#* }";; esac
    done; echo '}'; } > "$sn_d/manifest.json" || { rm -rf "$sn_d"; die "cannot write $sn_d/manifest.json"; }
  echo "snapshot.dir=$sn_d"; for sn_kv; do echo "snapshot.${sn_kv%% *}=${sn_kv#* }"; done
  prune "$into" "$keep"
}
snaps_report() {  # --snapshots DIR: how many complete snapshots, the newest's age in seconds (host clock)
  [ -n "$snaps" ] || return 0
  sp_n=0 sp_a=-
  for sp_d in $(stamps "$snaps"); do
    [ -f "$snaps/$sp_d/manifest.json" ] || continue
    sp_n=$((sp_n + 1)); [ "$sp_a" != - ] || sp_a=$(($(date +%s) - $(stat -c %Y "$snaps/$sp_d/manifest.json")))
  done
  echo "snapshots=$sp_n $sp_a"
}
do_stage() {  # a root-only directory for a restore's files (the restore removes it; a day-old one goes)
  root_dir "$work"
  find "$work" -maxdepth 1 -name '.incoming.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null
  st=$(mktemp -d "$work/.incoming.XXXXXX") || die "cannot create a directory in $work"
  echo "stage=$st"
}
# aof_rdb DIR: DIR/appendonlydir (an AOF with its manifest, e.g. a Docker volume's) loaded by a throwaway
# server of this host's version (no TCP port, a root-only socket) and saved as DIR/dump.rdb, so what this
# server cannot load is refused before anything changes
aof_rdb() {
  set -- "$1" $(find "$1/appendonlydir" -maxdepth 1 -type f -name '*.manifest' -printf "%f\n" 2>/dev/null)
  [ $# = 2 ] || die "$1/appendonlydir must hold one AOF manifest (*.manifest): nothing was changed"
  rm -f "$1/dump.rdb" "$1/sock"
  "${cli%-cli}-server" --port 0 --unixsocket "$1/sock" --unixsocketperm 700 --dir "$1" --dbfilename dump.rdb \
    --appendonly yes --appenddirname appendonlydir --appendfilename "${2%.manifest}" --save '' \
    --logfile "$1/load.log" --daemonize no > "$1/load.err" 2>&1 &
  ao_p=$! ao_i=0 ao_r=
  while kill -0 "$ao_p" 2>/dev/null && [ "$ao_i" -lt $((W * 100)) ]; do
    ao_r=$(c_sock=$1/sock c_user="" c_pass=""; ask ping | head -n 1)
    [ "$ao_r" != PONG ] || { ao_r=$(c_sock=$1/sock c_user="" c_pass=""; ask save; ask shutdown nosave); break; }
    ao_i=$((ao_i + 1)); sleep 0.1
  done
  kill "$ao_p" 2>/dev/null; wait "$ao_p" 2>/dev/null
  case $ao_r in OK*) [ -s "$1/dump.rdb" ] && return 0;; esac
  # the first error it logged once running (its start lines and warnings say nothing about the AOF)
  ao_w=$(sed '1,/Server initialized/d' "$1/load.log" 2>/dev/null | grep ' # ' | grep -v WARNING | head -n 1 | sed 's/^.* # //')
  die "$(server_version) here cannot load the AOF in $1/appendonlydir (${ao_w:-$(cat "$1/load.err" "$1/load.log" 2>/dev/null | grep . | tail -n 1)}): nothing was changed"
}
# restore --from DIR (dump.rdb, or appendonlydir/ with its manifest) [--sha256 HEX] [--keys N]
do_restore() {
  need_cli; mk_tmp
  [ -n "$from" ] && [ -d "$from" ] || die "--from DIR is required"
  case $from in "$work"/.incoming.*) trap 'rm -rf "$tmp" "$from"' EXIT;; esac
  [ ! -f "$sd/restart-pending" ] || die "a restart is pending (a deploy did not finish): run deploy.py first; nothing was changed"
  [ ! -d "$from/appendonlydir" ] || aof_rdb "$from"
  rs_f=$from/dump.rdb
  [ -f "$rs_f" ] || die "$from holds neither dump.rdb nor appendonlydir/: nothing was changed"
  [ -z "$wsha" ] || [ "$(sha256sum < "$rs_f" | cut -c1-64)" = "$wsha" ] \
    || die "the backup's SHA-256 differs from its manifest's (damaged, or cut short): nothing was changed"
  checked "$rs_f" || die "$(server_version) here cannot read the backup (RDB format $(rdbver "$rs_f")): $ck_why; nothing was changed"
  [ -z "$wkeys" ] || [ "$wkeys" = "$ck_keys" ] || die "the backup holds $ck_keys keys, its manifest $wkeys: nothing was changed"
  rs_p=$((ck_keys - ck_ttl))
  reach "$config" || die "$config does not exist: run deploy.py first; nothing was changed"
  rs_dd=${datadir:-$r_dir} rs_db=$r_dbf rs_ad=$r_adir rs_aof=$r_aof
  chain "$rs_dd"
  case $w in root|"$suser") ;; *) die "$rs_dd is not safe to write as root (${w_why:-it belongs to $w}): nothing was changed";; esac
  if find_now; then pick; [ "$ident" = "$admin" ] || die "the running server refuses $admin ('$p_reply'): nothing was changed"; fi
  rs_s=$(date +%Y%m%d%H%M%S)
  while [ -e "$rs_dd/$rs_db.hsi-before-$rs_s" ] || [ -e "$rs_dd/$rs_ad.hsi-before-$rs_s" ]; do sleep 1; rs_s=$(date +%Y%m%d%H%M%S); done
  svc stop >/dev/null 2>&1 || die "could not stop $service: nothing was changed"
  # as the server's user, who owns the data directory (root never works inside it): the data aside, the backup in
  w=$suser rs_aside=0
  as_w sh -c 'cd "$1" && for f in "$2" "$3" appendonly.aof; do if [ -e "$f" ] || [ -L "$f" ]; then mv "$f" "$f.hsi-before-$4" || exit 1; fi; done' \
    hsi-redis-restore "$rs_dd" "$rs_db" "$rs_ad" "$rs_s" || rs_back "the current data could not be put aside"
  rs_aside=1
  as_w sh -c 'cd "$1" && { cat > ".$2.hsi-new" && mv ".$2.hsi-new" "$2"; } || { rm -f ".$2.hsi-new"; exit 1; }' \
    hsi-redis-restore "$rs_dd" "$rs_db" < "$rs_f" || rs_back "the backup could not be written to $rs_dd (disk full?)"
  echo "kept=$rs_dd/*.hsi-before-$rs_s"
  ( secure_aof "$rs_aof" && { [ "$(svc is-active)" = active ] || { bounce start; use "$config"; wait_up; }; } ) \
    || rs_back "$service did not come up on the backup"
  use "$config"; pick || rs_back "the server on the backup refuses $admin ('$p_reply')"
  set -- $(count)
  [ "$2" = "$rs_p" ] && [ "$1" -le "$ck_keys" ] \
    || rs_back "the server on the backup holds $1 keys ($2 without a TTL), the backup $ck_keys ($rs_p without a TTL)"
  echo "restored=$1 $2"
}
rs_back() {  # WHY: the previous data back and served; always fails, saying what serves now
  say "$1: putting the previous data back"
  svc stop >/dev/null 2>&1
  w=$suser
  as_w sh -c 'cd "$1" || exit 1; for f in "$2" "$3" appendonly.aof; do [ "$5" = 0 ] || rm -rf "$f" || exit 1
    if [ -e "$f.hsi-before-$4" ] || [ -L "$f.hsi-before-$4" ]; then [ -e "$f" ] || mv "$f.hsi-before-$4" "$f" || exit 1; fi; done' \
    hsi-redis-restore "$rs_dd" "$rs_db" "$rs_ad" "$rs_s" "$rs_aside" \
    || die "$1, and the previous data could not be put back: it is in $rs_dd/*.hsi-before-$rs_s"
  if ( secure_aof "$rs_aof" && { [ "$(svc is-active)" = active ] || { bounce start; use "$config"; wait_up; }; } ) \
    && use "$config" && pick; then
    set -- "$1" $(count); die "$1: rolled back, $service serves the previous data ($2 keys)"
  fi
  die "$1: the previous data is back in $rs_dd, but $service does not answer on it either: see journalctl -u $service"
}

# -- state and verify
ssha() { { printf "%s" "$salt"; cat "$1"; } | sha256sum | cut -c1-64; }
kind() {  # PATH: f d l o(ther) -
  if [ -L "$1" ]; then echo l; elif [ -f "$1" ]; then echo f; elif [ -d "$1" ]; then echo d
  elif [ -e "$1" ]; then echo o; else echo -; fi
}
meta() { [ "$(kind "$1")" = - ] && echo '- - -' || stat -c "%a %U %G" "$1"; }
kind_of() {  # PATH: what `kind` prints, in pk (no subshell: the read asks for some twenty files)
  if [ -L "$1" ]; then pk=l; elif [ -f "$1" ]; then pk=f; elif [ -d "$1" ]; then pk=d
  elif [ -e "$1" ]; then pk=o; else pk=-; fi
}
path_reports() {
  IFS=$NL
  for pr_p in $files; do
    IFS=$DIFS; kind_of "$pr_p"
    if [ "$pk" = - ]; then echo "file=- - - - - $pr_p"; continue; fi
    pr_h=-; [ "$pk" != f ] || pr_h=$(ssha "$pr_p")
    echo "file=$pk $(stat -c "%a %U %G" "$pr_p") $pr_h $pr_p"
  done
  IFS=$NL
  for pr_p in $dirs; do
    IFS=$DIFS; chain "$pr_p"; echo "dir=$(kind "$pr_p") $(meta "$pr_p") $w $pr_p"
  done
  IFS=$DIFS; pr_n=0
  while [ -n "$envs" ]; do
    pr_p=${envs%%"$NL"*}; envs=${envs#*"$NL"}; pr_ks=${envkeys%%"$NL"*}; envkeys=${envkeys#*"$NL"}
    chain "${pr_p%/*}"; pr_k=$(kind "$pr_p")
    if [ "$pr_k" = f ]; then
      pr_s=$(awk -v scan="$pr_ks" "$MERGE_AWK" "$pr_p")
      echo "env=f $(meta "$pr_p") $(printf "%s\n" "$pr_s" | sed -n 's/^crlf //p') $w $pr_p"
      printf "%s\n" "$pr_s" | while read -r pr_t pr_a pr_b; do
        case $pr_t in
          key) echo "envkey=$pr_n $pr_a $({ printf "%s" "$salt"; sed -n "${pr_b}p" "$pr_p" | tr -d '\r\n'; } | sha256sum | cut -c1-64)";;
          bad) echo "envbad=$pr_n $pr_a $pr_b";;
        esac
      done
    else echo "env=$pr_k $(meta "$pr_p") 0 $w $pr_p"
    fi
    pr_n=$((pr_n + 1))
  done
}
# awk over the batch (--csv): INFO fields, keys, CONFIG GET pairs, ACL LOG's auth failures parsed as data
# (a username may hold newlines, spaces, quotes: CSV quotes and escapes it)
CSV_FN='
function csv(s,   i, c, t, n, inq) {
  n = 0; t = ""; inq = 0
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (inq) { if (c == "\\") { i++; t = t substr(s, i, 1) } else if (c == "\"") inq = 0; else t = t c }
    else if (c == "\"") inq = 1
    else if (c == ",") { T[++n] = t; t = "" }
    else t = t c
  }
  T[++n] = t; return n
}'
STATE_AWK=$CSV_FN'
BEGIN { n = split("redis_version valkey_version server_name uptime_in_seconds run_id process_id tcp_port aof_enabled aof_rewrite_in_progress aof_rewrite_scheduled aof_last_bgrewrite_status aof_last_write_status loading rdb_bgsave_in_progress rdb_last_bgsave_status maxmemory maxmemory_policy role config_file executable", F, " ")
  for (i = 1; i <= n; i++) want[F[i]] = 1 }
/^"@@/ { sec = substr($0, 4, length($0) - 4); next }
sec == "info" {
  if ($0 ~ /^db[0-9]+:/) { split($0, a, /[:=,]/); keys += a[3]; ex += a[5] }
  p = index($0, ":"); if (p) { k = substr($0, 1, p - 1); if (k in want) print "info." k "=" substr($0, p + 1); if (k == "run_id") run = substr($0, p + 1) }
  next
}
sec == "conf" {
  if ($0 !~ /^ERROR,/) { n = csv($0); for (i = 1; i < n; i += 2) { print "conf." T[i] "=" T[i + 1]; if (T[i] == "acllog-max-len") mx = T[i + 1] + 0 } }
  next
}
function entry() { if (lr == "auth") { sum += lc; if (since >= 0 && la + 1 < since) rec += lc }; lr = "" }
sec == "acl" {
  acl = 1; if ($0 ~ /^ERROR,/) { acl = 0; next }
  n = csv($0)
  for (i = 1; i < n; i += 2) { v = T[i + 1]; if (T[i] == "count") { entry(); lc = v; ne++ } else if (T[i] == "reason") lr = v; else if (T[i] == "age-seconds") la = v }
}
END {
  entry(); print "keys=" keys + 0; print "persistent=" keys - ex
  print "#acl " (acl ? sum + 0 : "-") " " (run == "" ? "-" : run) " " rec + 0 " " (mx > 0 && ne >= mx ? 1 : 0)
}'
BACKEND_AWK=$CSV_FN'
/^AUTH failed/ { a = $0; next } { n = csv($0); r[++i] = (T[1] == "ERROR" && n > 1) ? T[2] : T[1] }
END { print "backend.ping=" (a == "" ? r[1] : a); print "backend.flushall=" r[3]; print "backend.config_set=" r[6] }'
server_report() {  # the server part of state/verify (record=1: moves the auth-failure counter on)
  printf 'server.active=%s\nserver.enabled=%s\n' "$(unit_is is-active "$service")" "$(unit_is is-enabled "$service")"
  command -v "$cli" >/dev/null 2>&1 || { printf 'server.cli=0\nserver.via=none\n'; data_report; return; }
  sr_via=none sr_cfg=-
  if find_now; then sr_via=plain; [ "$c_tls" = 0 ] || sr_via=tls; sr_cfg=last-good; [ "$now_cfg" != "$config" ] || sr_cfg=current; fi
  printf 'server.cli=1\nserver.via=%s\nserver.addr=%s\nserver.port=%s\nserver.tls_port=%s\nserver.config=%s\nserver.noauth=%s\n' \
    "$sr_via" "$c_addr" "$r_port" "$r_tport" "$sr_cfg" "$noauth"
  [ "$sr_via" != none ] || { data_report; return; }
  sr_pp=$r_port sr_tp=$r_tport sr_ca=$r_ca
  pick; sr_auth=PONG; [ "$ident" != refused ] || sr_auth=$p_reply
  printf 'server.auth=%s\nserver.identity=%s\n' "$sr_auth" "$ident"
  if [ "$ident" != refused ]; then
    # seconds since the last recorded run: a full ACL LOG drops old entries, so its new failures are those
    # in entries updated since then (whole seconds)
    sr_s=$(head -n 1 "$sd/auth-failures" 2>/dev/null | cut -d ' ' -f 3)
    case $sr_s in ''|*[!0-9]*) sr_s=-1;; *) sr_s=$(($(date +%s) - sr_s));; esac
    sr_o=$(printf "%s\n" 'ECHO @@info' INFO 'ECHO @@conf' 'CONFIG GET maxmemory' 'CONFIG GET maxmemory-policy' \
      'CONFIG GET appendonly' 'CONFIG GET appendfsync' 'CONFIG GET dir' 'CONFIG GET port' 'CONFIG GET tls-port' \
      'CONFIG GET acllog-max-len' 'ECHO @@acl' 'ACL LOG 100000' 'ECHO @@end' | ask --csv | awk -v since="$sr_s" "$STATE_AWK")
    printf "%s\n" "$sr_o" | grep -v '^#'
    set -- $(printf "%s\n" "$sr_o" | sed -n 's/^#acl //p')
    echo "acl.failures=$1"
    if [ "$1" != - ]; then
      printf 'acl.recent=%s\nacl.full=%s\n' "$3" "$4"
      [ ! -s "$sd/auth-failures" ] || echo "acl.previous=$(head -n 1 "$sd/auth-failures")"
      [ "$record" = 0 ] || [ ! -d "$sd" ] || { sr_t=$(mktemp "$sd/.auth-failures.XXXXXX") \
        && echo "$2 $1 $(date +%s)" > "$sr_t" && mv -f "$sr_t" "$sd/auth-failures"; }
    fi
  fi
  # FLUSHALL and CONFIG SET as the backend, queued in MULTI and discarded: NOPERM when denied, QUEUED
  # when allowed; their arguments are invalid too, so even outside a transaction they change nothing
  [ ! -s "$sd/backend.auth" ] || printf "%s\n" PING MULTI 'FLUSHALL HSI-PROBE' DISCARD MULTI 'CONFIG SET hsi-probe x' \
    DISCARD | { c_user="" c_pass=$(cat "$sd/backend.auth"); ask --csv; } | awk "$BACKEND_AWK"
  if [ "$sr_tp" -gt 0 ] && [ -n "$sr_ca" ]; then
    [ "$sr_via" = tls ] || sr_auth=$(c_port=$sr_tp c_tls=1 c_ca=$sr_ca; ask ping | head -n 1)
    echo "tls.ping=$sr_auth"
    echo "tls.nocert=$(c_port=$sr_tp c_tls=1 c_ca=$sr_ca c_cert=0 c_user="" c_pass=""; ask ping | head -n 1)"
  fi
  # the plain port, or while TLS-only the one the last good config had: closed?
  [ "$sr_pp" -gt 0 ] || { reach "$(lgc)" && sr_pp=$r_port; } || sr_pp=0
  [ "$sr_via" = plain ] || [ "$sr_pp" = 0 ] || noauth=$(c_port=$sr_pp c_tls=0 c_user="" c_pass=""; ask ping | head -n 1)
  [ "$sr_pp" = 0 ] || echo "plain.ping=$noauth"
  data_report
}
data_report() {
  [ -n "$datadir" ] || { reach "$config"; datadir=$r_dir; }
  [ -n "$datadir" ] || return 0
  echo "data.rdb=$(mtime "$datadir/dump.rdb")"; echo "data.aof=$(aof_mtime "$datadir")"
}
choose_layout() {  # the first --layout whose unit is active, else the first whose config exists
  [ -n "$layouts" ] || return 0
  cl_i=0 cl_pick=
  IFS=$NL
  for cl_l in $layouts; do
    IFS=$DIFS
    if [ "$(unit_is is-active "${cl_l%%:*}")" = active ]; then cl_pick=$cl_i:$cl_l; break; fi
    cl_r=${cl_l#*:}; [ -n "$cl_pick" ] || [ ! -f "${cl_r%%:*}" ] || cl_pick=$cl_i:$cl_l
    cl_i=$((cl_i + 1))
  done
  IFS=$DIFS
  [ -n "$cl_pick" ] || return 1
  echo "server.layout=${cl_pick%%:*}"; cl_r=${cl_pick#*:}
  service=${cl_r%%:*}; cl_r=${cl_r#*:}; config=${cl_r%%:*}; cl_r=${cl_r#*:}; cli=${cl_r%%:*}; datadir=${cl_r#*:}
}
host_report() {
  awk -F= '$1 == "ID" { i = $2 } $1 == "VERSION_ID" { v = $2 } $1 == "ID_LIKE" { l = $2 }
    END { gsub(/"/, "", i); gsub(/"/, "", v); gsub(/"/, "", l); print "os_id=" (i == "" ? "unknown" : i); print "os_version=" v; print "os_like=" l }' \
    /etc/os-release 2>/dev/null
  hr_c=$(systemd-detect-virt --container 2>/dev/null); echo "container=${hr_c:-none}"
  [ -d /run/systemd/system ] && echo systemd=1 || echo systemd=0
  [ -f "$sd/restart-pending" ] && echo restart_pending=1 || echo restart_pending=0
  hr_p=/usr/local/sbin/hsi-redis; [ -f "$hr_p" ] && echo "program=$(ssha "$hr_p")" || echo program=-
}
packages_report() {
  [ -n "$pm" ] || if command -v apt-get >/dev/null 2>&1; then pm=apt; elif command -v dnf >/dev/null 2>&1; then pm=dnf; else pm=none; fi
  echo "pm=$pm"
  case $pm in
    apt)
      # installed versions from dpkg; apt's candidates (apt-cache reads its whole cache: the read's dearest
      # step) only where they count, on a host with none of these packages yet or a minimum version to check
      pr_i=$(dpkg-query -W -f '${Package} ${db:Status-Abbrev} ${Version}\n' $pkgs 2>/dev/null)
      if [ "$dnfcand" = 0 ] && printf "%s\n" "$pr_i" | grep -q '^[^ ]* ii '; then
        printf "%s\n" "$pr_i" | awk -v want="$pkgs" '$2 == "ii" { i[$1] = $3 }
          END { n = split(want, w, " "); for (k = 1; k <= n; k++) print "pkg=" w[k], (i[w[k]] == "" ? "-" : i[w[k]]), "-" }'
      else apt-cache policy $pkgs 2>/dev/null | awk -v want="$pkgs" '
        /^[^ ]/ { p = $0; sub(/:$/, "", p) } $1 == "Installed:" { i[p] = $2 } $1 == "Candidate:" { c[p] = $2 }
        END { n = split(want, w, " "); for (k = 1; k <= n; k++) { a = i[w[k]]; b = c[w[k]]
          if (a == "" || a == "(none)") a = "-"; if (b == "" || b == "(none)") b = "-"; print "pkg=" w[k], a, b } }'; fi
      pr_t=$(stat -c %Y "$STAMP" 2>/dev/null) \
        && echo "apt_lists_age=$(($(date +%s) - pr_t))" || echo apt_lists_age=-1;;
    dnf)
      for pr_p in $pkgs; do
        pr_v=$(rpm -q --qf '%{VERSION}-%{RELEASE}\n' "$pr_p" 2>/dev/null | grep -v 'not installed' | head -n 1)
        pr_c=
        [ -n "$pr_v" ] || [ "$dnfcand" = 0 ] \
          || pr_c=$(dnf -q repoquery --latest-limit 1 --qf '%{version}-%{release}\n' "$pr_p" 2>/dev/null | grep -m 1 -E '^[0-9]')
        echo "pkg=$pr_p ${pr_v:--} ${pr_c:--}"
      done
      for pr_m in $modules; do
        echo "module=$pr_m $(dnf -q module list --enabled "$pr_m" 2>/dev/null | awk -v m="$pr_m" '$1 == m { print $2; exit }' | grep . || echo -)"
      done;;
  esac
  pr_se=$(getenforce 2>/dev/null) || pr_se=Disabled; echo "selinux=$pr_se"
  [ -z "$seports" ] || [ "$pr_se" = Disabled ] || port_types | sed 's/^/selinux_port=/'
}
port_types() {  # "PORT TYPE" for each of --selinux-ports that semanage labels
  semanage port -l -n 2>/dev/null | awk -v want="$seports" 'BEGIN { n = split(want, w, " ") } $2 == "tcp" {
    line = $0; sub(/^[^ ]+ +tcp +/, "", line); gsub(/ /, "", line); m = split(line, p, ",")
    for (i = 1; i <= m; i++) for (j = 1; j <= n; j++) if (p[i] == w[j] && !(w[j] in seen)) { seen[w[j]] = 1; print w[j], $1 } }'
}
units_report() {  # one systemctl call for every unit; kept in unit_lines for unit_is (no more calls)
  unit_lines=$(svc show $units | awk -v names="$units" 'function out() { print "unit=" u[++i], s["LoadState"], s["ActiveState"], (s["UnitFileState"] == "" ? "-" : s["UnitFileState"]); split("", s); seen = 0 }
    BEGIN { split(names, u, " ") } /^$/ { if (seen) out(); next } { p = index($0, "="); s[substr($0, 1, p - 1)] = substr($0, p + 1); seen = 1 } END { if (seen) out() }')
  [ -z "$unit_lines" ] || printf "%s\n" "$unit_lines"
}
unit_is() {  # is-active|is-enabled UNIT: what systemctl says, from units_report's read when it had the unit
  ui_l=${unit_lines#*"unit=$2 "}
  if [ "$ui_l" = "$unit_lines" ]; then svc "$1" "$2"; return; fi
  set -- "$1" ${ui_l%%"$NL"*}
  case $1 in is-active) echo "$3";; *) [ "$4" = - ] || echo "$4";; esac
}
kernel_report() {
  for kr in vm.overcommit_memory:vm/overcommit_memory net.core.somaxconn:net/core/somaxconn; do
    [ ! -r "/proc/sys/${kr#*:}" ] || { IFS= read -r kr_v < "/proc/sys/${kr#*:}"; echo "${kr%%:*}=$kr_v"; }
  done
  kr_f=/sys/kernel/mm/transparent_hugepage/enabled
  [ ! -r "$kr_f" ] || sed -n 's/.*\[\(.*\)\].*/thp=\1/p' "$kr_f"
}

# -- install
first_err() { printf "%s\n" "$1" | grep -m 1 -E '^(E:|Err:|Error:)' || printf "%s\n" "$1" | grep . | tail -n 1; }
pm_do() {  # WHAT CMD...: a package-manager step; on failure the tool's first error line is the reason
  pd_w=$1; shift; pd_o=$(DEBIAN_FRONTEND=noninteractive "$@" 2>&1) || die "$pd_w failed: $(first_err "$pd_o")"
}
apt_update() {  # retried while another process holds the lists lock (apt-get update does not wait for it)
  au_0=$(date +%s)
  while ! au_o=$(apt-get -q -o "DPkg::Lock::Timeout=$locktime" update 2>&1); do
    case $au_o in *"Could not get lock"*|*"Unable to lock"*) ;; *) die "apt-get update failed: $(first_err "$au_o")";; esac
    au_h=$(printf "%s\n" "$au_o" | grep -m 1 -o 'held by process.*')
    au_e=$(($(date +%s) - au_0))
    [ "$au_e" -lt "$locktime" ] || die "the apt lists lock stayed held for $locktime s (${au_h:-another apt run}); try again later"
    echo "waiting=apt lists lock ${au_h:-held}"
    au_e=$((locktime - au_e)); [ "$au_e" -le 3 ] || au_e=3; sleep "$au_e"
  done
  mkdir -p "${STAMP%/*}" && touch "$STAMP"; echo updated=1
}
do_install() {
  case $pm in apt|dnf) ;; *) die "--pm must be apt or dnf";; esac
  if [ ! -t 0 ]; then
    read_bundle
    # a file the installed server reads (the container drop-in) changes: the next apply must restart
    while read -r e_i e_k e_m e_u e_g e_f e_p <&3; do
      is_rfile || continue; entry check || exit 1
      [ "$e_res" = same ] || [ ! -f "$config" ] || : > "$sd/restart-pending" || die "cannot write $sd/restart-pending"
    done 3< "$tmp/m"
    write_entries all || exit 1
  fi
  [ "$unit_changed" = 0 ] || svc daemon-reload || die "systemctl daemon-reload failed"
  in_m=""
  if [ "$pm" = apt ]; then
    for in_p in $pkgs; do
      case $(dpkg-query -W -f="\${Status}" "$in_p" 2>/dev/null) in *" installed") ;; *) in_m=1;; esac
    done
    if [ -n "$in_m" ] || [ "$pinned$repo_changed" != 00 ]; then
      in_t=$(stat -c %Y "$STAMP" 2>/dev/null) || in_t=0
      [ "$repo_changed" = 0 ] && [ $(($(date +%s) - in_t)) -le "$maxage" ] || apt_update
      pm_do "apt-get install" apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold -o "DPkg::Lock::Timeout=$locktime" $pkgs
      set -- $pkgs; echo "installed=$*"
    fi
  else
    if [ -n "$mstream" ]; then
      in_s=$(dnf -q module list --enabled "${mstream%%:*}" 2>/dev/null | awk -v m="${mstream%%:*}" '$1 == m { print $2; exit }')
      if [ "$in_s" != "${mstream#*:}" ]; then
        # dnf refuses a second enabled stream of a module: reset the other one first
        [ -z "$in_s" ] || pm_do "dnf module reset" dnf module reset -y -q "${mstream%%:*}"
        pm_do "dnf module enable" dnf module enable -y -q "$mstream"; echo "module=$mstream"
      fi
    fi
    for in_p in $pkgs; do rpm -q "$in_p" >/dev/null 2>&1 || in_m=1; done
    if [ -n "$in_m$dnfspec" ]; then
      set -- $pkgs; [ -z "$dnfspec" ] || { [ $# = 0 ] || shift; set -- "$dnfspec" "$@"; }
      pm_do "dnf install" dnf install -y -q "$@"; echo "installed=$*"
    fi
  fi
  # SELinux: the server's ports labelled (-m when another type holds one), semanage installed first
  [ -n "$seports" ] || return 0
  in_s=$(getenforce 2>/dev/null) && [ "$in_s" != Disabled ] || return 0
  command -v semanage >/dev/null 2>&1 || if [ "$pm" = apt ]; then pm_do "installing $setools" apt-get install -y -q $setools
    else pm_do "installing $setools" dnf install -y -q $setools; fi
  in_t=$(port_types)
  for in_p in $seports; do
    in_h=$(printf "%s\n" "$in_t" | awk -v p="$in_p" '$1 == p { print $2; exit }')
    [ "$in_h" != "$setype" ] || continue
    in_x=-a; [ -z "$in_h" ] || in_x=-m
    pm_do "semanage port $in_x -t $setype -p tcp $in_p" semanage port "$in_x" -t "$setype" -p tcp "$in_p"
    echo "selinux_port=$in_p $setype"
  done
}

# -- apply, rotate
need_cli() { command -v "$cli" >/dev/null 2>&1 || die "$cli is not installed"; }
do_apply() {
  read_bundle; need_cli
  ap_need=0; [ ! -f "$sd/restart-pending" ] || ap_need=1
  ap_new=$config
  while read -r e_i e_k e_m e_u e_g e_f e_p <&3; do
    [ "$e_p" != "$config" ] || ap_new=$tmp/$e_i
    is_rfile || continue
    entry check || exit 1
    [ "$e_res" = same ] || ap_need=1
  done 3< "$tmp/m"
  if [ "$ap_need" = 1 ]; then
    reach "$ap_new"; secure_aof "$r_aof"
    keep_last_good
    : > "$sd/restart-pending" || die "cannot write $sd/restart-pending"
  fi
  write_entries now || exit 1
  [ "$unit_changed" = 0 ] || { unit_changed=0; svc daemon-reload >/dev/null 2>&1 || die "systemctl daemon-reload failed"; }
  [ "$ap_need" = 0 ] || do_restart
  # kernel settings (a sysctl.d file just written) into the running kernel; helper units on
  if [ -n "$sysctl" ]; then sysctl -q -p "$sysctl" || die "sysctl -p $sysctl failed"; echo kernel=applied; fi
  for ap_u in $dunits; do  # (a scheduled snapshot turned off)
    svc stop "$ap_u" >/dev/null 2>&1; svc disable "$ap_u" >/dev/null 2>&1 || die "could not disable $ap_u"
    echo "disabled=$ap_u"
  done
  for ap_u in $eunits; do
    svc enable "$ap_u" >/dev/null 2>&1 && svc start "$ap_u" >/dev/null 2>&1 || die "could not enable and start $ap_u"
    echo "enabled=$ap_u"
  done
  if [ "$enable" = 1 ]; then
    [ "$(svc is-enabled)" = enabled ] || { svc enable >/dev/null 2>&1 || die "could not enable $service"; echo enabled=1; }
    if [ "$(svc is-active)" != active ]; then
      reach "$config"; secure_aof "$r_aof"  # (starts it on its RDB first when that holds the newer data)
      if [ "$(svc is-active)" != active ]; then
        bounce start; use "$config"; wait_up || { reasons; die "$service did not answer after starting it"; }
        echo started=1
      fi
    fi
  fi
  write_entries after || exit 1
  [ "$unit_changed" = 0 ] || svc daemon-reload >/dev/null 2>&1 || die "systemctl daemon-reload failed"
  # --after-units (the exporter): enabled, running, restarted when a file flagged `units` changed; then
  # given a few seconds to serve --metrics, which the check right after this call reads
  for ap_u in $aunits; do
    [ "$(svc is-enabled "$ap_u")" = enabled ] || { svc enable "$ap_u" >/dev/null 2>&1 || die "could not enable $ap_u"; echo "enabled=$ap_u"; }
    if [ "$units_changed" = 1 ]; then ap_a=restart; elif [ "$(svc is-active "$ap_u")" != active ]; then ap_a=start; else continue; fi
    svc "$ap_a" "$ap_u" >/dev/null 2>&1 || die "$ap_a $ap_u failed: see systemctl status $ap_u"
    echo "${ap_a}ed_unit=$ap_u"; ap_i=0
    while [ -n "$metrics" ] && [ "$ap_i" -lt 50 ] && [ -z "$(scrape 2>/dev/null | head -c 1)" ]; do ap_i=$((ap_i + 1)); sleep 0.2; done
  done
}
# scrape: the exporter's page at --metrics HOST:PORT with what the host has: curl, wget, else bash's
# /dev/tcp (Debian's minimal images have only bash); 9 when it has none
scrape() {
  sc_h=${metrics%:*}; sc_h=${sc_h#[}
  if command -v curl >/dev/null 2>&1; then timeout "$T" curl -s "http://$metrics/metrics"
  elif command -v wget >/dev/null 2>&1; then timeout "$T" wget -q -O - "http://$metrics/metrics"
  elif command -v bash >/dev/null 2>&1; then
    timeout "$T" bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' "${sc_h%]}" "${metrics##*:}"
  else return 9
  fi
}
metrics_report() {  # exporter.up=<its redis_up> | down (no page) | unverified (no tool to read it)
  mr_o=$(scrape 2>/dev/null) || [ $? != 9 ] || { echo exporter.up=unverified; return; }
  mr_u=$(printf "%s\n" "$mr_o" | sed -n 's/^redis_up \([0-9]*\).*/\1/p' | head -n 1)
  echo "exporter.up=${mr_u:-down}"
}
pwcount() {  # how many passwords `default` has (asked as the admin)
  ask acl getuser default | awk '/^passwords$/ { p = 1; next } p && length($0) == 64 && /^[0-9a-f]+$/ { n++; next } p { p = 0 } END { print n + 0 }'
}
pong_as() { [ "$(c_user="" c_pass=$1; ask ping </dev/null)" = PONG ]; }  # PASSWORD: as `default`
setuser() { ro_r=$(printf 'ACL SETUSER default %s#%s\n' "$1" "$ro_sha" | ask); [ "$ro_r" = OK ] || die "ACL SETUSER failed: $ro_r"; }
# rotate: zero-downtime password change of the backend identity `default`; each step decides from what
# the server accepts, so an interrupted rotation is simply run again
do_rotate() {
  need_cli; mk_tmp
  IFS= read -r ro_l; case $ro_l in "password "*) ;; *) die "stdin must start with a 'password <base64>' line";; esac
  ro_new=$(printf "%s" "${ro_l#password }" | base64 -d 2>/dev/null) && [ -n "$ro_new" ] || die "the new password is not valid base64"
  [ "$verb" != rotate ] || read_bundle
  find_now || die "$service does not answer; nothing was changed"
  pick; [ "$ident" = "$admin" ] || die "the server refuses $admin with $sd/cli.auth ('$p_reply'); nothing was changed"
  ro_sha=$(printf "%s" "$ro_new" | sha256sum | cut -c1-64) ro_old=$(cat "$sd/backend.auth" 2>/dev/null) ro_did=0
  # 1. the new password beside the old one (asked of the admin: a trial AUTH would land in ACL LOG)
  if [ "$verb" != rotate-drop ] && ! ask acl getuser default | grep -qx "$ro_sha"; then
    [ -n "$ro_old" ] && pong_as "$ro_old" || die "the server accepts neither the new password nor the one in $sd/backend.auth: run the deploy first"
    setuser ''; pong_as "$ro_new" || die "the server does not accept the new password after adding it"
    echo added=1; ro_did=1
  fi
  [ "$verb" != rotate-add ] || return 0
  if [ "$verb" = rotate ]; then
    # 2. the files, no restart: the running server accepts the new password already
    write_entries all || exit 1
    [ "$unit_changed" = 0 ] || svc daemon-reload || die "systemctl daemon-reload failed"
    keep_last_good; ro_did=$ro_did$wrote
  fi
  ro_n=$(pwcount)
  if [ "$verb" = rotate ]; then
    # 3. the consumers, while the rotation is unfinished (a rerun of a finished one restarts nothing)
    if [ "$ro_did" != 00 ] || { [ "$drop" = 1 ] && [ "$ro_n" -gt 1 ]; }; then
      for ro_u in $runits; do
        svc try-restart "$ro_u" >/dev/null 2>&1 || die "restarting $ro_u failed; the old password stays valid until it runs with the new one"
        echo "restarted_unit=$ro_u"
      done
    fi
    # a consumer must be restarted by hand first: the notice (root 0600) says for which password the
    # operator was told; the state read shows it to the next run, which may then drop the old one
    if [ "$drop" = 0 ]; then
      [ "$ro_n" -gt 1 ] || return 0
      ro_t=$(mktemp "$sd/.notice.XXXXXX") && echo "$ro_sha" > "$ro_t" && mv -fT "$ro_t" "$sd/rotation-notice" \
        || { rm -f "$ro_t"; die "cannot write $sd/rotation-notice; the old password stays valid"; }
      echo kept_old=1; return 0
    fi
  fi
  # 4. one atomic command leaves only the new password
  [ "$ro_n" -gt 1 ] || { rm -f "$sd/rotation-notice"; return 0; }
  pong_as "$ro_new" || die "the server does not accept the new password: run the rotation again"
  setuser 'resetpass '; pong_as "$ro_new" || die "the server does not accept the new password after dropping the old"
  [ -z "$ro_old" ] || [ "$ro_old" = "$ro_new" ] || ! pong_as "$ro_old" || die "the old password still works after dropping it"
  rm -f "$sd/rotation-notice"; echo "dropped=$((ro_n - 1))"
}

# write: a client host's files (a backend host's .env, CA, client pair), then --restart-units restarted
do_write() {
  read_bundle; write_entries all || exit 1
  [ "$unit_changed" = 0 ] || svc daemon-reload >/dev/null 2>&1 || die "systemctl daemon-reload failed"
  for wr_u in $runits; do
    svc try-restart "$wr_u" >/dev/null 2>&1 || die "restarting $wr_u failed"; echo "restarted_unit=$wr_u"
  done
}

# ping: a backend host asks its server as the backend would (--addr --port, TLS with --ca [--cert --key]),
# its password on stdin; a host without a CLI says so
do_ping() {
  IFS= read -r pg_l; case $pg_l in "password "*) ;; *) die "stdin must start with a 'password <base64>' line";; esac
  c_pass=$(printf "%s" "${pg_l#password }" | base64 -d 2>/dev/null) || die "the password is not valid base64"
  cli=$(command -v redis-cli || command -v valkey-cli) || { echo ping=-; return 0; }
  c_addr=$pgaddr c_port=$pgport c_ca=$pgca c_crt=$pgcrt c_key=$pgkey; [ -z "$pgca" ] || c_tls=1
  pg_r=$(ask ping | head -n 1)
  [ "$pg_r" = PONG ] || die "PING to $pgaddr:$pgport as the backend answered '${pg_r:-nothing}'"
  echo ping=PONG
}

# -- firewall (issue 11): the server's ports admit loopback and the listed sources only. nft: our own
# table, loaded atomically from our file (`table; delete table; table {...}` replaces it and nothing
# else), kept across reboots by our own unit; firewalld: our own policy file, then a reload.
FW_TABLE='inet hsi_redis'
fw_mark() {  # the comment our loaded table carries, or -
  fm=; ! command -v nft >/dev/null 2>&1 || fm=$(nft list table $FW_TABLE 2>/dev/null | sed -n 's/^[[:space:]]*comment "\(.*\)"$/\1/p')
  echo "${fm:--}"
}
fw_policy() { firewall-cmd --get-policies 2>/dev/null | tr ' ' '\n' | grep -qx hsi-redis; }
firewall_report() {
  fr_c=$(awk '/^CapEff:/ { print $2 }' /proc/self/status 2>/dev/null); fr_c=${fr_c:-0000}
  fr_c=$(( (0x${fr_c#"${fr_c%????}"} >> 12) & 1 ))  # CAP_NET_ADMIN
  echo "firewall.cap=$fr_c"; echo "firewall.nft=$(command -v nft || echo -)"
  fr_s=-; ! command -v firewall-cmd >/dev/null 2>&1 || fr_s=$(firewall-cmd --state 2>/dev/null || echo stopped)
  echo "firewall.firewalld=$fr_s"
  [ "$fr_s" != running ] || { fw_policy && echo firewall.policy=1 || echo firewall.policy=0; }
  [ "$fr_c" = 0 ] || echo "firewall.table=$(fw_mark)"
}
do_firewall() {
  case $fwtool in
    nft)
      read_bundle; write_entries all || exit 1
      [ "$unit_changed" = 0 ] || svc daemon-reload >/dev/null 2>&1 || die "systemctl daemon-reload failed"
      command -v nft >/dev/null 2>&1 || die "nft is not installed (package nftables)"
      fw_o=$(nft -f "$fwfile" 2>&1) || die "nft -f $fwfile failed: $(printf "%s\n" "$fw_o" | grep . | head -n 1)"
      [ "$(fw_mark)" = "$fwmark" ] || die "the table $FW_TABLE does not carry '$fwmark' after loading $fwfile"
      echo firewall=loaded
      [ -z "$fwunit" ] || { svc enable "$fwunit" >/dev/null 2>&1 && svc start "$fwunit" >/dev/null 2>&1; } \
        || die "could not enable and start $fwunit"
      ;;
    firewalld)
      read_bundle; write_entries all || exit 1
      fw_o=$(firewall-cmd --reload 2>&1) || die "firewall-cmd --reload failed: $(printf "%s\n" "$fw_o" | grep . | head -n 1)"
      fw_policy || die "firewalld did not load the policy hsi-redis from $fwfile"
      echo firewall=loaded;;
    off)
      if [ "$(fw_mark)" != - ]; then nft delete table $FW_TABLE || die "could not delete the table $FW_TABLE"; echo firewall=removed; fi
      [ -z "$fwunit" ] || svc disable "$fwunit" >/dev/null 2>&1
      fw_r=
      IFS=$NL
      for fw_f in $fwrm; do
        IFS=$DIFS; [ -e "$fw_f" ] || continue
        rm -f "$fw_f" || die "could not remove $fw_f"; echo "removed=$fw_f"; fw_r="$fw_r $fw_f"
      done
      IFS=$DIFS
      case $fw_r in */firewalld/*) [ "$(firewall-cmd --state 2>/dev/null)" != running ] || firewall-cmd --reload >/dev/null 2>&1 \
        || die "firewall-cmd --reload failed";; esac
      case $fw_r in */systemd/*) svc daemon-reload >/dev/null 2>&1;; esac;;
    *) die "--tool must be nft, firewalld or off";;
  esac
}

record=0
case $verb in
  state) record=1; host_report; [ -z "$pkgs$modules$seports" ] || packages_report; [ -z "$units" ] || units_report
    [ "$kernel" = 0 ] || kernel_report; [ "$fw" = 0 ] || firewall_report; path_reports; snaps_report
    if [ "$noserver" = 1 ]; then echo "client.cli=$(command -v redis-cli || command -v valkey-cli || echo -)"
    else choose_layout && server_report; fi
    [ -z "$metrics" ] || metrics_report;;
  verify) record=1; [ "$fw" = 0 ] || firewall_report; path_reports; snaps_report
    [ "$noserver" = 1 ] || { choose_layout && server_report; }; [ -z "$metrics" ] || metrics_report;;
  install) do_install;;
  apply) do_apply;;
  restart) need_cli; reach "$config"; secure_aof "$r_aof"; do_restart;;
  secure-aof) need_cli; secure_aof yes;;
  keep-last-good) need_cli; keep_last_good;;
  rotate|rotate-add|rotate-drop) do_rotate;;
  write) do_write;;
  ping) do_ping;;
  firewall) do_firewall;;
  snapshot) do_snapshot;;
  stage) do_stage;;
  restore) do_restore;;
  *) die "unknown verb '$verb' (state verify install apply restart secure-aof keep-last-good rotate rotate-add rotate-drop write firewall ping snapshot stage restore)";;
esac
exit 0
