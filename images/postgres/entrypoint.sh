#!/bin/bash
# Start PostgreSQL in the foreground, creating its data directory on the
# first start.
#
# Environment (the names of the official postgres image, so manifests port):
#   POSTGRES_PASSWORD  the superuser's password; required on the first start
#   POSTGRES_USER      the superuser's name (default: postgres)
#   POSTGRES_DB        a database created on the first start (default: POSTGRES_USER)
#   PGDATA             the data directory (default: /var/lib/postgresql/data/pgdata)
#
# PGDATA is a subdirectory of the mounted volume, not its root: a volume's
# root may hold lost+found or belong to root with group access (fsGroup),
# while PostgreSQL wants a directory it owns with mode 0700.
#
# As with the official image, the variables only matter on the first start:
# changing the password in the Secret later does not change it in the
# database (use ALTER ROLE for that).
set -Eeuo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/data/pgdata}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
SOCKET_DIR=/var/run/postgresql
export PGDATA

log() { printf '[entrypoint] %s\n' "$*" >&2; }
die() { printf '[entrypoint] error: %s\n' "$*" >&2; exit 1; }

# initialise: initdb into a sibling directory, create the database, and only
# then rename it to PGDATA. A start killed half-way (OOM, node loss) leaves
# no PGDATA that looks initialised but lacks the database or the password.
initialise() {
  [[ -n "${POSTGRES_PASSWORD:-}" ]] ||
    die "POSTGRES_PASSWORD is empty; it is needed on the first start, which creates the data directory $PGDATA"
  local parent; parent="$(dirname "$PGDATA")"
  [[ -d "$parent" && -w "$parent" ]] ||
    die "$parent is not a directory writable by UID $(id -u): give the volume to that user (fsGroup, or chown on a hostPath volume)"
  if [[ -e "$PGDATA" ]]; then
    # An empty directory (made by hand, say) is fine; anything else is not ours to overwrite.
    rmdir "$PGDATA" 2>/dev/null ||
      die "$PGDATA exists but is no PostgreSQL data directory (no PG_VERSION); refusing to touch it"
  fi
  local work="$PGDATA.initializing"
  rm -rf "$work"
  log "initialising $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
  # The password goes through a pipe, never argv (visible in ps) or a file.
  # Local socket connections (only from inside this container, e.g. kubectl
  # exec) are trusted; everything over TCP needs the password.
  initdb --pgdata="$work" --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --no-instructions >&2
  cat >>"$work/postgresql.conf" <<EOF

# Set by $(basename "$0") on initialisation.
listen_addresses = '*'
port = 5432
unix_socket_directories = '$SOCKET_DIR'
password_encryption = scram-sha-256
EOF
  cat >"$work/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS    METHOD
# The Unix socket is reachable only from inside the container.
local   all       all              trust
# Any TCP client (the pod network, through the Service) needs the password.
host    all       all   0.0.0.0/0  scram-sha-256
host    all       all   ::/0       scram-sha-256
EOF
  if [[ "$POSTGRES_DB" != postgres ]]; then
    # A private server (socket only) just long enough to create the database.
    pg_ctl --pgdata="$work" --options="-c listen_addresses=''" --wait --timeout=120 --silent start >&2
    # psql quotes the name (:"db"): whatever the variable holds, it is an identifier.
    psql -X -q -v ON_ERROR_STOP=1 -v db="$POSTGRES_DB" --host="$SOCKET_DIR" \
      --username="$POSTGRES_USER" --dbname=postgres <<<'CREATE DATABASE :"db";'
    pg_ctl --pgdata="$work" --mode=fast --wait --timeout=120 --silent stop >&2
  fi
  mv "$work" "$PGDATA"
  log "initialised"
}

[[ "$(id -u)" != 0 ]] || die "run as the postgres user (UID 999), not root: PostgreSQL refuses to run as root"
umask 0077
[[ -s "$PGDATA/PG_VERSION" ]] || initialise
exec postgres -D "$PGDATA" "$@"
