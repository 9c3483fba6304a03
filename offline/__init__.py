"""The offline plan's engine: the real program run under the Pulumi SDK's mock runtime
(`harness`), with canned provider answers (`canned`). Operator tools (tools/plan.py, the policy,
cost and Terraform views) and the tests read plans through it; nothing of the program imports it.
"""
