#!/usr/bin/env bash
# Start the named local services if they are not answering: postgres, rabbitmq.
# Used by .ci/run and the demo; safe to run again (a running service is left alone).
set -euo pipefail

wait_for() {  # wait_for NAME COMMAND...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name did not come up within 60 s" >&2
  return 1
}

for service in "$@"; do
  case "$service" in
    postgres)
      if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
        echo "starting PostgreSQL"
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
      fi
      # Tests connect as the postgres superuser over TCP without a password (trust), as on this machine kind.
      if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
        echo "error: cannot connect to PostgreSQL at 127.0.0.1:5432 as user postgres without a password;" \
             "set AIIDA_TEST_PG_USER/AIIDA_TEST_PG_PASSWORD or enable trust authentication for 127.0.0.1" >&2
        exit 1
      fi
      ;;
    rabbitmq)
      if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
        echo "starting RabbitMQ"
        # AiiDA warns about RabbitMQ >= 3.8.15 unless the consumer timeout is disabled.
        if [ ! -f /etc/rabbitmq/advanced.config ]; then
          mkdir -p /etc/rabbitmq
          echo '[{rabbit,[{consumer_timeout,undefined}]}].' > /etc/rabbitmq/advanced.config
        fi
        rabbitmq-server -detached
        wait_for RabbitMQ bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
      fi
      ;;
    *)
      echo "unknown service: $service" >&2
      exit 2
      ;;
  esac
done
