#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft: broker + controller in one JVM)
# on loopback, for the integration tests of the Kafka stage. The jars come
# from Maven Central (scripts/kafka/pom.xml) and are cached, git-ignored,
# under .cache/kafka-VERSION/libs.
#
# Besides the plaintext listener (PORT, principal ANONYMOUS, a super user:
# the tests' own tools and admin), the broker is secured as a production
# cluster would be: StandardAuthorizer with ACLs (no ACL, no access), a
# SASL_SSL listener (PORT+2, SCRAM-SHA-256 and SCRAM-SHA-512 with the
# credentials created at format time, and PLAIN) and an mTLS listener (PORT+3, client certificate
# required, principal = the certificate's CN). A throwaway CA and the
# certificates are made by openssl at each fresh start, under DIR/tls:
#   ca.pem                      the CA the clients trust
#   broker.pem                  broker key + chain, for DNS:localhost only
#                               (so 127.0.0.1 is a hostname mismatch)
#   stage.{crt,key}             client certificate CN=stage (mTLS)
#   rogue-ca.pem                an unrelated CA (the untrusted-CA test)
#   DIR/secrets/USER.password   passwords: admin (super user), stage
#                               (SCRAM-SHA-512 and PLAIN), stage256
#                               (SCRAM-SHA-256)
# The secured listeners advertise `localhost`; clients use
# broker.address.family=v4.
#
# usage: scripts/kafka.sh start|stop|status|fetch
#        scripts/kafka.sh restart   (stop, then start on the same data: a
#                                    broker restart, topics and offsets kept)
#        scripts/kafka.sh pause|resume   (SIGSTOP/SIGCONT the broker: an
#                                         unresponsive broker, data kept)
#        scripts/kafka.sh topic NAME [PARTITIONS]   (create; idempotent)
#        scripts/kafka.sh acl ARGS...   (kafka-acls on the plaintext listener)
# env:   BW_KAFKA_PORT (9092; the controller uses PORT+1, SASL_SSL PORT+2,
#        mTLS PORT+3),
#        BW_KAFKA_DIR (build/kafka: config, data, log, pid)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' \
    "$root/scripts/kafka/pom.xml")
libs=$root/.cache/kafka-$version/libs
port=${BW_KAFKA_PORT:-9092}
dir=${BW_KAFKA_DIR:-$root/build/kafka}
cp_="$libs/*"
# shellcheck source=scripts/service_lib.sh
. "$root/scripts/service_lib.sh"

need_java() {
    if ! command -v java > /dev/null || ! command -v mvn > /dev/null; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            --no-install-recommends openjdk-17-jre-headless maven > /dev/null
    fi
}

fetch() {
    [ -f "$libs/kafka_2.13-$version.jar" ] && [ -f "$libs/.complete" ] && return 0
    need_java
    echo "kafka: fetching Apache Kafka $version from Maven Central" >&2
    mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$libs" -DincludeScope=runtime >&2
    touch "$libs/.complete"
}

write_tls() {
    tls=$dir/tls
    mkdir -p "$tls" "$dir/secrets"
    chmod 700 "$dir/secrets"
    make_ca ca "bayeswatch test CA"
    make_ca rogue-ca "an unrelated CA"
    make_cert broker localhost "DNS:localhost"
    cat "$tls/broker.key" "$tls/broker.crt" "$tls/ca.pem" > "$tls/broker.pem"
    make_cert stage stage
    for u in admin stage stage256; do
        openssl rand -hex 16 > "$dir/secrets/$u.password"
    done
}

write_config() {
    mkdir -p "$dir"
    write_tls
    local sasl=$((port + 2)) mtls=$((port + 3))
    local jaas="org.apache.kafka.common.security.scram.ScramLoginModule required;"
    local plain="org.apache.kafka.common.security.plain.PlainLoginModule required"
    plain+=" user_admin=\"$(secret admin)\" user_stage=\"$(secret stage)\";"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((port + 1))
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1)),SASL_SSL://127.0.0.1:$sasl,SSL://127.0.0.1:$mtls
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://localhost:$sasl,SSL://localhost:$mtls
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
inter.broker.listener.name=PLAINTEXT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:admin
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$jaas
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
listener.name.ssl.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/\$1/,DEFAULT
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
    cat > "$dir/log4j2.properties" <<'LOG'
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:bw.kafka.log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
LOG
}

secret() {
    cat "$dir/secrets/$1.password"
}

start() {
    if running; then
        echo "kafka: already running (pid $(cat "$dir/pid"))"
        return 0
    fi
    fetch
    need_java
    if [ "${1:-}" != keep ]; then
        rm -rf "$dir"
        write_config
        local id
        id=$(java -cp "$cp_" kafka.tools.StorageTool random-uuid 2> /dev/null)
        java -cp "$cp_" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
            -Dbw.kafka.log="$dir/format.log" kafka.tools.StorageTool format \
            -t "$id" -c "$dir/server.properties" \
            --add-scram "SCRAM-SHA-512=[name=admin,password=\"$(secret admin)\"]" \
            --add-scram "SCRAM-SHA-512=[name=stage,password=\"$(secret stage)\"]" \
            --add-scram "SCRAM-SHA-256=[name=stage256,password=\"$(secret stage256)\"]" \
            > "$dir/format.out" 2>&1
    fi
    : > "$dir/broker.log"
    nohup java -Xms256m -Xmx768m -XX:+UseG1GC -cp "$cp_" \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -Dbw.kafka.log="$dir/broker.log" \
        kafka.Kafka "$dir/server.properties" > "$dir/stdout.log" 2>&1 &
    echo $! > "$dir/pid"
    wait_ready "kafka: broker" 60 "$dir/broker.log" "$dir/stdout.log" \
        broker_up || return 1
    echo "kafka: $version ready on 127.0.0.1:$port (pid $(cat "$dir/pid"))"
}

# The broker has logged its start and accepts connections.
broker_up() {
    grep -q "Kafka Server started" "$dir/broker.log" 2> /dev/null &&
        (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null
}

topic() {
    local name=${1:?topic name} parts=${2:-4}
    java -cp "$cp_" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -Dbw.kafka.log="$dir/tools.log" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$port" --create --if-not-exists \
        --topic "$name" --partitions "$parts" --replication-factor 1
}

acl() {
    java -cp "$cp_" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -Dbw.kafka.log="$dir/tools.log" org.apache.kafka.tools.AclCommand \
        --bootstrap-server "127.0.0.1:$port" "$@"
}

case ${1:-} in
topic) shift; topic "$@" ;;
acl) shift; acl "$@" ;;
start) start ;;
stop) stop_service kafka ;;
restart) stop_service kafka && start keep ;;
pause) running && kill -STOP "$(cat "$dir/pid")" ;;
resume) running && kill -CONT "$(cat "$dir/pid")" ;;
status) if running; then echo "kafka: running on 127.0.0.1:$port"; else echo "kafka: not running"; exit 1; fi ;;
fetch) fetch ;;
*) echo "usage: $0 start|stop|status|fetch|pause|resume|topic NAME [PARTITIONS]|acl ARGS..." >&2; exit 64 ;;
esac
