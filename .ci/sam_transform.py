"""Print the CloudFormation that the SAM transform makes of a template, as JSON.

Runs the SAM translator locally (no AWS call: the template uses no managed-policy names), so
that cfn-lint can check the generated resources too, e.g. a !GetAtt on a resource SAM never
creates, which neither `sam validate` nor cfn-lint on the SAM template notices.
"""
import json
import sys

import os

from cfnlint.decode import decode
from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The translator asks for managed-policy ARNs only when a template names one."""

    def load(self):
        return {}


def main(path):
    template, matches = decode(path)
    if matches:
        for m in matches:
            print(m, file=sys.stderr)
        return 1
    # As `sam package` would: local code folders become S3 locations.
    packaged = "s3://packaged-code/bootstrap.zip"
    function_globals = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = packaged
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = packaged
    # The translator reads the region from the environment (for ARNs and partitions).
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        output = transform(template, {}, NoManagedPolicies(), passthrough_metadata=True)
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(cause.message, file=sys.stderr)
        return 1
    json.dump(output, sys.stdout, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
