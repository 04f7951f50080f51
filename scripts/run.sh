#!/usr/bin/env bash
# Start the deadline worker and the web server together; Ctrl-C stops both.
set -u
cd "$(dirname "$0")/.."
BIN=.venv/bin
"$BIN/complaints" worker &
worker=$!
"$BIN/complaints" serve --bind "${COMPLAINTS_BIND:-127.0.0.1:8000}" &
server=$!
stop() {
    kill -TERM "$worker" "$server" 2>/dev/null
    wait "$worker" "$server" 2>/dev/null
}
trap 'stop; exit 0' INT TERM
echo "Complaints is running at http://${COMPLAINTS_BIND:-127.0.0.1:8000}/ (Ctrl-C stops it)"
# Stop both when either one exits.
wait -n "$worker" "$server"
status=$?
stop
exit "$status"
