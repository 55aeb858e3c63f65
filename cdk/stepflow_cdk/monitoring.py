"""Alarms (dead letters, function errors, throttles) and a dashboard."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = Duration.minutes(5)


class Monitoring(Construct):
    """One alarm per dead-letter queue and per function error/throttle metric; a dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.Function],
        queues: dict[str, sqs.Queue],
        dead_letters: dict[str, sqs.Queue],
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        for name, dead in dead_letters.items():
            self._alarm(
                f"{name}DeadLetters",
                dead.metric_approximate_number_of_messages_visible(period=PERIOD),
                "Messages reached the dead-letter queue: a poison message or a failing stepper",
            )
        for name, function in functions.items():
            self._alarm(f"{name}Errors", function.metric_errors(period=PERIOD), "Function errors")
            self._alarm(
                f"{name}Throttles",
                function.metric_throttles(period=PERIOD),
                "Throttled invocations",
            )
        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Queue age (s)",
                left=[q.metric_approximate_age_of_oldest_message() for q in queues.values()],
            ),
            cloudwatch.GraphWidget(
                title="Dead letters",
                left=[
                    d.metric_approximate_number_of_messages_visible() for d in dead_letters.values()
                ],
            ),
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                left=[f.metric_errors() for f in functions.values()],
                right=[f.metric_throttles() for f in functions.values()],
            ),
            cloudwatch.GraphWidget(
                title="Duration (ms)", left=[f.metric_duration() for f in functions.values()]
            ),
        )

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, description: str) -> None:
        self.alarms.append(
            cloudwatch.Alarm(
                self,
                construct_id,
                metric=metric,
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
        )
