"""Reaching a deployed StepFlow API (API Gateway, IAM auth) with the caller's credentials.

:mod:`stepflow.proxy.signing` signs boto3 clients and raw requests for
``execute-api``; :mod:`stepflow.proxy.forward` is the local HTTP server behind
``stepflow proxy`` and ``stepflow console --api`` that re-signs what it forwards.
"""
