"""The host's alert set (configs/monitoring.py) as CloudWatch alarms for the cluster placement
(issue 19): each alarm says which host alert it stands for. Rendered as the PutMetricAlarm API
takes them; tests/test_cluster_placement.py validates them against botocore's CloudWatch model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from configs import postgres as pg

# Host alerts with no CloudWatch counterpart, and why (docs/architecture.md repeats this).
NOT_MAPPED = {
    "BackupTooOldPgbackrest": "RDS takes the backups; its backup failures reach the topic as RDS events",
    "BackupTooOldLogical": "no logical dump job on the cluster; RDS snapshots and PITR instead",
    "BackupTooOldRedis": "ElastiCache takes the snapshots",
    "BackupTooOldOffsite": "RDS keeps the backups in AWS; the S3 buckets are versioned",
    "BackupTooOldMinio": "dev only",
    "BackupFailing": "RDS events (category backup) reach the topic",
    "BackupMetricsMissing": "no backup job to report metrics",
    "WalArchivingBehind": "RDS archives WAL itself (PITR reaches five minutes back at most)",
    "AccessKeyRotationOverdue": "no static key exists on the cluster (task roles)",
    "PostgresDown": "RDS's own availability, failure and failover events reach the topic",
    "RedisDown": "ElastiCache replaces a failed node itself (and promotes the replica in production); "
                 "no metric says down, its events need an SNS topic without KMS (not made), and the "
                 "API's 5xx (origin-5xx) alarm meanwhile",
    "EdgeDown": "the edge's tasks are the load balancer's targets: edge-no-healthy-target alarms when "
                "none answers (three failed checks, then its minute: about two minutes)",
    "ServiceDown": "each service's <name>-tasks-missing alarm pages when fewer than its minimum tasks run",
}


@dataclass(frozen=True)
class Alarm:
    name: str
    # The host alert it stands for.
    host_alert: str
    namespace: str
    metric: str
    dimensions: Mapping[str, Any]
    comparison: str
    threshold: float
    periods: int
    period_s: int = 60
    statistic: str | None = "Sum"
    extended_statistic: str | None = None
    missing: str = "notBreaching"

    @property
    def description(self) -> str:
        return f"{self.name} (the host placement's {self.host_alert})"

    def request(self, prefix: str, topic_arn: str) -> dict[str, Any]:
        """The PutMetricAlarm input."""
        body: dict[str, Any] = {
            "AlarmName": f"{prefix}-{self.name}",
            "AlarmDescription": self.description,
            "Namespace": self.namespace, "MetricName": self.metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(self.dimensions.items())],
            "ComparisonOperator": self.comparison, "Threshold": self.threshold,
            "EvaluationPeriods": self.periods, "DatapointsToAlarm": self.periods, "Period": self.period_s,
            "TreatMissingData": self.missing,
            "AlarmActions": [topic_arn], "OKActions": [topic_arn], "ActionsEnabled": True,
        }
        if self.extended_statistic:
            body["ExtendedStatistic"] = self.extended_statistic
        else:
            body["Statistic"] = self.statistic
        return body


def alarms(*, load_balancer: Any, target_group: Any, cluster: Any, services: Mapping[str, tuple[Any, int]],
           database: Any, database_memory_mb: int, storage_gb: int, cache_nodes: Sequence[Any],
           certificate_arn: Any) -> list[Alarm]:
    """Every alarm of one stack, from the names of what it watches (plain strings, or Pulumi
    Inputs: nothing here reads them). `services`: name -> (its ECS service name, minimum tasks)."""
    lb = {"LoadBalancer": load_balancer}
    tg = {"LoadBalancer": load_balancer, "TargetGroup": target_group}
    max_connections = int(pg.server_settings(database_memory_mb)["max_connections"])
    out = [
        Alarm("edge-unhealthy-targets", "TargetDown", "AWS/ApplicationELB", "UnHealthyHostCount", tg,
              "GreaterThanThreshold", 0, 5, statistic="Maximum"),
        Alarm("edge-no-healthy-target", "TargetDown", "AWS/ApplicationELB", "HealthyHostCount", tg,
              "LessThanThreshold", 1, 1, statistic="Minimum", missing="breaching"),
        Alarm("origin-5xx", "High5xxRatio", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", lb,
              "GreaterThanThreshold", 25, 5),
        Alarm("load-balancer-5xx", "High5xxRatio", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", lb,
              "GreaterThanThreshold", 25, 5),
        Alarm("p95-latency", "HighP95Latency", "AWS/ApplicationELB", "TargetResponseTime", lb,
              "GreaterThanThreshold", 1.5, 10, statistic=None, extended_statistic="p95"),
        Alarm("postgres-connections", "PostgresConnectionsNearLimit", "AWS/RDS", "DatabaseConnections",
              {"DBInstanceIdentifier": database}, "GreaterThanThreshold", int(max_connections * 0.8), 5,
              statistic="Maximum"),
        Alarm("postgres-storage-low", "HostDiskFillingUp", "AWS/RDS", "FreeStorageSpace",
              {"DBInstanceIdentifier": database}, "LessThanThreshold", storage_gb * 1024 ** 3 * 0.1, 5,
              statistic="Minimum"),
        *[Alarm(f"redis-memory-{i}", "RedisMemoryNearMaxmemory", "AWS/ElastiCache",
                "DatabaseMemoryUsagePercentage", {"CacheClusterId": node}, "GreaterThanThreshold", 90, 5,
                statistic="Maximum") for i, node in enumerate(cache_nodes)],
        Alarm("origin-certificate-expiry", "OriginCertificateExpiringSoon", "AWS/CertificateManager",
              "DaysToExpiry", {"CertificateArn": certificate_arn}, "LessThanThreshold", 21, 1,
              # ACM publishes the metric once a day: before the first datapoint "breaching" would
              # page the on-call for a new certificate; "ignore" waits for data.
              period_s=86400, statistic="Minimum", missing="ignore"),
        # A service running fewer tasks than its minimum (Container Insights).
        *[Alarm(f"{name}-tasks-missing", "TargetDown", "ECS/ContainerInsights", "RunningTaskCount",
                {"ClusterName": cluster, "ServiceName": service}, "LessThanThreshold", minimum, 5,
                statistic="Minimum", missing="breaching") for name, (service, minimum) in services.items()],
    ]
    return out
