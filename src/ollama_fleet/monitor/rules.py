"""Prometheus alerting rules on the monitor's metrics, for users who alert from Prometheus.

`ollama-fleet monitor rules > ollama-fleet.rules.yml`, then name the file in Prometheus's
`rule_files`. The rules mirror the monitor's own alerts (target down, a check failing or
warning, certificates, models, exposure) plus what only Prometheus can see: the monitor
itself gone or stalled, and the GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

GROUP = "ollama-fleet"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One alerting rule; `for_` None uses the file's default."""

    alert: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: str | None = None


def alert_rules(
    *,
    for_: str = "5m",
    cert_warn_days: float = 21,
    cert_fail_days: float = 3,
    first_token_s: float = 10,
    stale_after_s: float = 900,
    gpu_hot_celsius: float = 85,
) -> tuple[Rule, ...]:
    """The rules as records (pure); `render_rules` writes them as a rules file."""
    target = "{{ $labels.target }}"
    check = "{{ $labels.check }}"
    return (
        Rule(
            alert="OllamaFleetTargetDown",
            expr='ollama_fleet_check_success{check="connectivity"} == 0',
            severity="critical",
            summary=f"{target} does not answer",
            description=f"The connectivity check of {target} has failed for {for_}: "
            "nothing answers at its URL, or not as Ollama.",
        ),
        Rule(
            alert="OllamaFleetCheckFailing",
            # connectivity has its own rule above; the others fail with it while a host is down
            expr='ollama_fleet_check_status{status="fail", check!="connectivity"} == 1',
            severity="critical",
            summary=f"{check} fails on {target}",
            description=f"The {check} check of {target} has failed for {for_}; the status "
            "page and `ollama-fleet check` show why.",
        ),
        Rule(
            alert="OllamaFleetCheckWarning",
            expr='ollama_fleet_check_status{status="warn"} == 1',
            severity="warning",
            summary=f"{check} warns on {target}",
            description=f"The {check} check of {target} has warned for {for_}.",
        ),
        Rule(
            alert="OllamaFleetSlowFirstToken",
            expr="histogram_quantile(0.95, sum by (job, instance, target, le) "
            f"(rate(ollama_fleet_chat_first_token_seconds_bucket[1h]))) > {first_token_s:g}",
            severity="warning",
            summary=f"{target} is slow to the first token",
            description=f"The 95th percentile time to the first token of {target} over the "
            f"last hour is {{{{ $value | humanizeDuration }}}} (limit {first_token_s:g} s).",
        ),
        Rule(
            alert="OllamaFleetCertExpiringSoon",
            expr=f"ollama_fleet_tls_cert_seconds_left < {cert_warn_days:g} * 86400 "
            f"and ollama_fleet_tls_cert_seconds_left >= {cert_fail_days:g} * 86400",
            severity="warning",
            summary=f"the certificate of {target} expires soon",
            description=f"The certificate of {target} expires in "
            "{{ $value | humanizeDuration }}: is its renewal failing?",
            for_="0m",
        ),
        Rule(
            alert="OllamaFleetCertExpiryCritical",
            expr=f"ollama_fleet_tls_cert_seconds_left < {cert_fail_days:g} * 86400",
            severity="critical",
            summary=f"the certificate of {target} expires within {cert_fail_days:g} days",
            description=f"The certificate of {target} has "
            "{{ $value | humanizeDuration }} left (negative: expired).",
            for_="0m",
        ),
        Rule(
            alert="OllamaFleetRequiredModelMissing",
            expr='ollama_fleet_model_present{required="true"} == 0',
            severity="critical",
            summary=f"{{{{ $labels.model }}}} is missing on {target}",
            description=f"{target} does not list the required model {{{{ $labels.model }}}}: "
            "run `ollama-fleet deploy INVENTORY --roles models`.",
        ),
        Rule(
            alert="OllamaFleetPortExposed",
            expr="ollama_fleet_exposure_port_open == 1",
            severity="critical",
            summary=f"port {{{{ $labels.port }}}} of {target} is open",
            description=f"Port {{{{ $labels.port }}}} of {target} must be closed but accepts "
            "connections from the monitor.",
        ),
        Rule(
            alert="OllamaFleetMonitorAbsent",
            expr="absent(ollama_fleet_monitor_info)",
            severity="critical",
            summary="no ollama-fleet monitor is scraped",
            description="Prometheus has no ollama_fleet_monitor_info series: the monitor is "
            "down, or its scrape fails.",
        ),
        Rule(
            alert="OllamaFleetMonitorStale",
            expr="time() - max without (target, check) "
            f"(ollama_fleet_check_last_run_timestamp_seconds) > {stale_after_s:g}",
            severity="warning",
            summary="the monitor on {{ $labels.instance }} has stopped checking",
            description="No check has finished for {{ $value | humanizeDuration }}: "
            "the monitor's scheduler is stuck.",
            for_="0m",
        ),
        Rule(
            alert="OllamaFleetAlertDeliveryFailing",
            expr="increase(ollama_fleet_monitor_alert_deliveries_total"
            '{result=~"error|dropped"}[15m]) > 0',
            severity="warning",
            summary="alerts to {{ $labels.receiver }} fail",
            description="The monitor could not send alerts to the receiver "
            "{{ $labels.receiver }} in the last 15 minutes: it retries, and gives up on a "
            "permanent refusal (a 4xx) or after 20 tries.",
        ),
        Rule(
            alert="OllamaFleetGpuHot",
            expr=f"ollama_fleet_gpu_temperature_celsius > {gpu_hot_celsius:g}",
            severity="warning",
            summary="GPU {{ $labels.gpu }} on {{ $labels.instance }} runs hot",
            description="GPU {{ $labels.gpu }} ({{ $labels.name }}) is at {{ $value }} °C.",
        ),
        Rule(
            alert="OllamaFleetGpuEccErrors",
            expr='increase(ollama_fleet_gpu_ecc_errors_total{type="uncorrected"}[15m]) > 0',
            severity="critical",
            summary="GPU {{ $labels.gpu }} on {{ $labels.instance }} has uncorrected ECC errors",
            description="GPU {{ $labels.gpu }} ({{ $labels.uuid }}) reported uncorrected memory "
            "errors in the last 15 minutes: drain the host and check `nvidia-smi -q -d ECC`.",
            for_="0m",
        ),
    )


def render_rules(
    *,
    for_: str = "5m",
    cert_warn_days: float = 21,
    cert_fail_days: float = 3,
    first_token_s: float = 10,
    stale_after_s: float = 900,
    gpu_hot_celsius: float = 85,
) -> str:
    """A Prometheus rules file (YAML) with the group `ollama-fleet`."""
    rules = alert_rules(
        for_=for_,
        cert_warn_days=cert_warn_days,
        cert_fail_days=cert_fail_days,
        first_token_s=first_token_s,
        stale_after_s=stale_after_s,
        gpu_hot_celsius=gpu_hot_celsius,
    )
    document = {
        "groups": [
            {
                "name": GROUP,
                "rules": [
                    {
                        "alert": rule.alert,
                        "expr": rule.expr,
                        "for": rule.for_ or for_,
                        "labels": {"severity": rule.severity},
                        "annotations": {"summary": rule.summary, "description": rule.description},
                    }
                    for rule in rules
                ],
            }
        ]
    }
    header = "# Prometheus alerting rules for ollama-fleet's monitor (ollama-fleet monitor rules)\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)
