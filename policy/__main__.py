"""The policy pack: `pulumi preview --policy-pack policy` (and `up`) enforce every rule of
rules.py as mandatory."""

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from rules import RULES, Resource, Rule


def _policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in rule.types:
            return
        resource = Resource(type=args.resource_type, name=args.name, urn=args.urn, props=args.props,
                            protect=bool(args.opts.protect) if args.opts else False)
        rule.check(resource, lambda message: report_violation(message, None))

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY)


PolicyPack(name="storiesofsoftware", enforcement_level=EnforcementLevel.MANDATORY,
           policies=[_policy(rule) for rule in RULES])
