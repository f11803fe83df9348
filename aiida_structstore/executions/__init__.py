"""Execution state beside the structures: what the application shows about AiiDA processes (and their Slurm jobs).

* :mod:`.projection`: ``ProcessNode`` rows → records, the structure ids a process took and produced found from the
  remembered projections of its structures;
* :mod:`.selection`: which processes belong to a target (a group, given processes, or those that used its
  structures, with all they called);
* :mod:`.sync`: incremental, batched, idempotent projection of many processes (``verdi data structstore executions
  sync``);
* :mod:`.watch`: the live path, following AiiDA's state-change broadcasts over RabbitMQ.

The records themselves (key, content, record, content hash) are AiiDA-free, in :mod:`aiida_structstore.core.executions`.
"""
