"""Remediation actions. The action implementations (plan / execute / verify / rollback) come with the
approvals issue; this catalogue fixes their type names now so that waste rules can propose them and a
meta-test can check that every proposed action is a known one."""

from __future__ import annotations

ACTION_TYPES: dict[str, str] = {
    "ec2-stop-instance": "Stop an EC2 instance (rollback: start it)",
    "ec2-resize-instance": "Stop, change the instance type, start (rollback: the original type)",
    "ebs-snapshot-delete-volume": "Snapshot an unattached EBS volume, then delete it (rollback: recreate)",
    "sagemaker-delete-endpoint": "Delete an idle SageMaker endpoint, keeping its endpoint config",
    "offhours-schedule": "Tag a resource with an off-hours schedule (rollback: previous tags)",
    "apply-tags": "Apply tags to a resource (rollback: previous tags)",
    "switch-llm-model": "Switch a feature's model in the model-routing policy (rollback: previous model)",
    "set-rate-limit": "Set a team/environment rate limit or token budget (rollback: previous limit)",
}
