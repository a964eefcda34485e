"""Benchmarks of postbackd against the limits of its own parts; run them with ``python -m bench.run``.

The entry point is ``bench.run``; the other modules are its scenarios
(``_ingest``, ``_delivery``, ``_latency``, ``_restart``), the tools they use
(``_daemon``, ``_receiver``, ``_load``, ``_data``, ``_logbuild``,
``_profile``) and the report (``_results``, ``_report``, ``_machine``).
"""
