"""What changed near the symptom, and the incident told from the evidence.

- :func:`obskit.mark_deploy` (:mod:`obskit.incident.markers`) and ``obskit deploy mark`` record a
  deployment: a structured log event and, where configured, a Grafana annotation, a Sentry
  release deploy and a Datadog deployment event (:mod:`obskit.incident.destinations`).
- ``obskit incident timeline`` and ``obskit incident postmortem`` read Prometheus (and,
  optionally, log files and the kept-trace file) and tell what happened in a window: changes,
  detection, symptoms, saturation, where to look — and a blameless postmortem draft from it.

These run beside the service, never inside its requests: ``import obskit`` imports nothing of
this package, and every HTTP call made here is obskit's own (:func:`obskit._selfcalls.quiet`).
"""
