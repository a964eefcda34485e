"""Benchmarks of postbackd against the limits of its own parts; run them with ``python -m bench.run``.

The entry point is ``bench.run``. The scenarios are in ``_ingest``,
``_delivery``, ``_latency`` and ``_restart``. The tools they use are in
``_daemon``, ``_receiver``, ``_load``, ``_data``, ``_logbuild`` and
``_profile``, and the report is built by ``_results``, ``_report`` and
``_machine``.
"""
