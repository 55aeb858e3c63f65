"""The CDK app: ``npx cdk synth`` / ``npx cdk deploy`` (see cdk.json).

Context: ``-c stepflow:bundle=false`` packages the layer from source without
pip (fast, offline; what the tests synthesize); ``-c stepflow:nag=false``
skips the cdk-nag AwsSolutions checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stepflow_cdk.app import build_app

build_app().synth()
