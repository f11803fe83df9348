#!/usr/bin/env bash
# Start the named local services if they are not answering: postgres, rabbitmq, slurm (one-node cluster + munge).
# `stop-slurm` stops the Slurm daemons and munged again. Used by .ci/run and the test fixtures; safe to run again
# (a running service is left alone).
set -euo pipefail
SLURM_STATE=${SLURM_STATE:-/var/lib/structstore-slurm}

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
      # On a throwaway CI machine whose cluster asks for passwords, allow trust for local TCP connections.
      if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 && [ "${CI:-}" = true ]; then
        hba=$(runuser -u postgres -- psql -Atc 'show hba_file' 2>/dev/null || true)
        if [ -n "$hba" ]; then
          sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
          runuser -u postgres -- psql -Atc 'select pg_reload_conf()' >/dev/null
        fi
      fi
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
    slurm)
      if sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'; then continue; fi
      echo "starting a one-node Slurm cluster (munge, slurmctld, slurmd)"
      host=$(hostname -s)
      mkdir -p "$SLURM_STATE"/{ctld,d,log} /run/munge /etc/slurm
      chown munge:munge /run/munge
      [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || /usr/sbin/create-munge-key -f; }
      chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
      if ! pgrep -x munged >/dev/null; then runuser -u munge -- /usr/sbin/munged; fi
      memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
      cpus=$(nproc)
      cat > /etc/slurm/slurm.conf <<CONF
# Written by aiida-structstore scripts/services.sh: a one-node cluster for tests.
ClusterName=structstore
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$SLURM_STATE/ctld
SlurmdSpoolDir=$SLURM_STATE/d
SlurmctldPidFile=$SLURM_STATE/slurmctld.pid
SlurmdPidFile=$SLURM_STATE/slurmd.pid
SlurmctldLogFile=$SLURM_STATE/log/slurmctld.log
SlurmdLogFile=$SLURM_STATE/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
      pgrep -x slurmctld >/dev/null || slurmctld
      pgrep -x slurmd >/dev/null || slurmd
      wait_for Slurm bash -c "sinfo -h -o %T | grep -qE 'idle|mixed|alloc'"
      ;;
    stop-slurm)
      pkill -x slurmd || true
      pkill -x slurmctld || true
      pkill -x munged || true
      ;;
    *)
      echo "unknown service: $service" >&2
      exit 2
      ;;
  esac
done
