"""boto3 against the bed's local S3 (moto server): its endpoint and dummy credentials.

The one place that knows how to reach the bed's S3 from outside the test hosts, for the
molecule suites and the demo. IAM cannot exist here, so the credentials are dummies.
"""

import os


def client():
    import boto3  # only callers that talk to S3 need it

    return boto3.client(
        "s3",
        endpoint_url=os.environ["NCD_BED_S3"],
        region_name="us-east-1",
        aws_access_key_id="bed",
        aws_secret_access_key="bed",
    )
