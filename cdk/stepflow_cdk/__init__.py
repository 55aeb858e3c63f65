"""StepFlow's CDK constructs: one stack composed of a construct per component."""

from stepflow_cdk.stack import StepFlowStack

__all__ = ["StepFlowStack"]
