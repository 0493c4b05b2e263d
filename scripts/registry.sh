#!/usr/bin/env bash
# Apicurio Registry 3.x (Apache-2.0) on loopback, for the schema-registry
# integration tests: its Confluent-compatible API at
# http://127.0.0.1:PORT/apis/ccompat/v7 and over TLS at
# https://localhost:PORT+2/apis/ccompat/v7 (a throwaway CA made by openssl
# at each start: DIR/tls/ca.pem; the certificate names DNS:localhost
# only), in-memory storage (H2), no auth.
# The server is the Quarkus application that Apicurio publishes on Maven
# Central (io.apicurio:apicurio-registry-app, classifier `all`, a tar.gz),
# checked against Maven Central's SHA-1 and cached, git-ignored, under
# .cache/apicurio-VERSION/. It needs Java 21 or newer: the newest JDK under
# /usr/lib/jvm (or BW_JAVA21_HOME).
#
# usage: scripts/registry.sh start|stop|status|fetch|pause|resume
#        (pause/resume: SIGSTOP/SIGCONT, an unresponsive registry)
# env:   BW_REGISTRY_PORT (8081; management/health on PORT+1 over https,
#        the API over https on PORT+2),
#        BW_REGISTRY_DIR (build/registry: log, pid)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=3.3.3
sha1=71e7918455480cbce405ad45552254eb47ec932d
base=https://repo1.maven.org/maven2/io/apicurio/apicurio-registry-app
app=$root/.cache/apicurio-$version
port=${BW_REGISTRY_PORT:-8081}
dir=${BW_REGISTRY_DIR:-$root/build/registry}
# shellcheck source=scripts/service_lib.sh
. "$root/scripts/service_lib.sh"

java21() {
    local j
    for j in ${BW_JAVA21_HOME:-} /usr/lib/jvm/*; do
        [ -x "$j/bin/java" ] || continue
        local v
        v=$("$j/bin/java" -XshowSettings:properties -version 2>&1 |
            sed -n 's/^ *java.specification.version = //p')
        if [ -n "$v" ] && [ "${v%%.*}" -ge 21 ]; then
            echo "$j/bin/java"
            return 0
        fi
    done
    echo "registry: no Java 21 or newer under /usr/lib/jvm (Apicurio" \
        "Registry 3 needs it; set BW_JAVA21_HOME)" >&2
    return 1
}

fetch() {
    [ -f "$app/quarkus-run.jar" ] && [ -f "$app/.complete" ] && return 0
    local tgz=$root/.cache/apicurio-registry-app-$version-all.tar.gz
    mkdir -p "$app"
    if [ ! -f "$tgz" ] || [ "$(sha1sum "$tgz" | cut -d' ' -f1)" != "$sha1" ]; then
        echo "registry: fetching Apicurio Registry $version from Maven" \
            "Central" >&2
        curl -fsSL --retry 3 -o "$tgz" \
            "$base/$version/apicurio-registry-app-$version-all.tar.gz"
    fi
    if [ "$(sha1sum "$tgz" | cut -d' ' -f1)" != "$sha1" ]; then
        echo "registry: checksum mismatch for $tgz" >&2
        rm -f "$tgz"
        return 1
    fi
    tar xzf "$tgz" -C "$app"
    rm -f "$tgz"
    touch "$app/.complete"
}

# A CA and a server certificate for localhost under $dir/tls.
write_tls() {
    tls=$dir/tls
    mkdir -p "$tls"
    make_ca ca "bayeswatch registry test CA"
    make_cert server localhost "DNS:localhost"
}

start() {
    if running; then
        echo "registry: already running (pid $(cat "$dir/pid"))"
        return 0
    fi
    fetch
    local java
    java=$(java21)
    mkdir -p "$dir"
    write_tls
    : > "$dir/registry.log"
    nohup "$java" -Xms64m -Xmx512m -XX:+UseSerialGC \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
        -Dquarkus.http.ssl-port=$((port + 2)) \
        -Dquarkus.http.insecure-requests=enabled \
        -Dquarkus.tls.key-store.pem.0.cert="$dir/tls/server.crt" \
        -Dquarkus.tls.key-store.pem.0.key="$dir/tls/server.key" \
        -Dquarkus.management.host=127.0.0.1 \
        -Dquarkus.management.port=$((port + 1)) \
        -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
        -Dquarkus.oidc.tenant-enabled=false \
        -Dapicurio.datasource.jdbc.initial-size=2 \
        -Dapicurio.datasource.jdbc.min-size=2 \
        -jar "$app/quarkus-run.jar" > "$dir/registry.log" 2>&1 &
    echo $! > "$dir/pid"
    wait_ready "registry:" 120 "$dir/registry.log" "$dir/registry.log" \
        registry_up || return 1
    echo "registry: Apicurio $version ready on" \
        "http://127.0.0.1:$port/apis/ccompat/v7 (pid $(cat "$dir/pid"))"
}

# Ready (with TLS configured the management interface serves https) and
# serving the Confluent-compatible API.
registry_up() {
    curl -sf --cacert "$dir/tls/ca.pem" \
        --resolve "localhost:$((port + 1)):127.0.0.1" \
        "https://localhost:$((port + 1))/health/ready" > /dev/null 2>&1 &&
        curl -sf "http://127.0.0.1:$port/apis/ccompat/v7/subjects" \
            > /dev/null 2>&1
}


case ${1:-} in
start) start ;;
stop) stop_service registry ;;
fetch) fetch ;;
pause) running && kill -STOP "$(cat "$dir/pid")" ;;
resume) running && kill -CONT "$(cat "$dir/pid")" ;;
status) if running; then echo "registry: running on 127.0.0.1:$port"; else echo "registry: not running"; exit 1; fi ;;
*) echo "usage: $0 start|stop|status|fetch|pause|resume" >&2; exit 64 ;;
esac
