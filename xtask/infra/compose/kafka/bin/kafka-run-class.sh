#!/usr/bin/env bash
# shellcheck disable=SC2206,SC2086 # the *_OPTS variables hold several arguments, as upstream
# kafka-run-class.sh CLASS ARGS...: the class on the broker's classpath (a short form of
# the upstream script). Tools log warnings to stderr; the broker (KAFKA_LOG4J_OPTS set
# by kafka-server-start.sh) logs to stdout.
set -euo pipefail
java_opts=(${KAFKA_HEAP_OPTS:--Xmx256M} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true})
log_opts=(${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties})
exec java "${java_opts[@]}" "${log_opts[@]}" ${KAFKA_OPTS:-} -cp '/opt/kafka/libs/*' "$@"
