# Shared by the test services (scripts/kafka.sh, scripts/registry.sh);
# sourced, not run. The caller sets $dir (the service's directory, with its
# pid file) and, for the certificates, $tls (where they go).

# Whether the service whose pid is in $dir/pid is alive.
running() {
    [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2> /dev/null
}

# Stop it: SIGCONT (it may be paused), SIGTERM, up to 30 s, then SIGKILL.
# usage: stop_service NAME
stop_service() {
    if ! running; then
        echo "$1: not running"
        return 0
    fi
    local pid
    pid=$(cat "$dir/pid")
    kill -CONT "$pid" 2> /dev/null || true
    kill "$pid"
    for _ in $(seq 60); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2> /dev/null || true
    rm -f "$dir/pid"
    echo "$1: stopped"
}

# Poll CHECK (a command) every 0.5 s until it succeeds (0), the service
# exits (1: LOG's tail shown) or SECONDS pass (1); messages name WHO and
# point at SEE. usage: wait_ready WHO SECONDS SEE LOG CHECK
wait_ready() {
    local who=$1 secs=$2 see=$3 log=$4 check=$5
    for _ in $(seq $((secs * 2))); do
        if "$check"; then
            return 0
        fi
        if ! running; then
            echo "$who exited; see $see" >&2
            tail -n 20 "$log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
    echo "$who not ready after $secs s; see $see" >&2
    return 1
}

# A throwaway CA: $tls/NAME.pem and .key, subject CN. usage: make_ca NAME CN
make_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=$2" \
        -keyout "$tls/$1.key" -out "$tls/$1.pem" 2> /dev/null
}

# A certificate $tls/NAME.crt/.key with CN and an optional subjectAltName,
# signed by $tls/ca.pem. usage: make_cert NAME CN [SAN]
make_cert() {
    local name=$1 cn=$2 san=${3:-}
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
        -keyout "$tls/$name.key" -out "$tls/$name.csr" 2> /dev/null
    {
        echo "basicConstraints=CA:FALSE"
        [ -z "$san" ] || echo "subjectAltName=$san"
    } > "$tls/$name.ext"
    openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.pem" \
        -CAkey "$tls/ca.key" -CAcreateserial -days 3 -extfile "$tls/$name.ext" \
        -out "$tls/$name.crt" 2> /dev/null
}
