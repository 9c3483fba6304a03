"""What `pulumi up` runs on the operator's machine through local commands (boto3, no Pulumi):
a cluster's one-off task to completion, the account's ECS service-linked roles."""
