"""Local tasks and their two-way sync with trackers (GitHub Issues, Jira): DESIGN.md "Sync".

- ``model``: a task's synced fields in task space, a tracker's item, the errors trackers raise;
- ``settings``: the ``sync:`` block of a tracker integration (the mapping);
- ``merge``: the 3-way merge of one item, field by field;
- ``tasks``: local tasks (store, audit, notifications);
- ``engine``: one tracker's items ⇄ tasks (echo guard, idempotent creates, plans), with ``links`` (leases),
  ``conflicts`` (parked under ``manual``), ``sweep`` (listing and export pass) and ``runs`` (a run's
  bookkeeping, waits and stops); ``service``: schedules sweeps, takes hints, stores runs.
"""
