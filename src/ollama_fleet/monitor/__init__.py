"""The monitor: the checks on a schedule, Prometheus metrics, alerts, history and a status page."""
