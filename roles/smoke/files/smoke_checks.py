"""The smoke check's probes that run inside the cluster, as the users the platform
gives its services (run by the smoke role in the MLflow image, which carries mlflow
and boto3). Each prints PASS or FAIL lines, one per criterion, and exits non-zero
on any failure. No credential is ever printed.

  buckets   every bucket the training and argo users may reach answers over the S3 API
  mlflow    the run RUN_ID has its parameters, metrics and model artifact; the model
            version VERSION of MODEL_NAME is registered from that run; its artifact
            is in the mlflow-artifacts bucket and the served model at SERVING_URI
  cleanup   remove what the smoke run created: the model version, the run, the
            served model's objects
"""

import os
import sys
from urllib.parse import urlsplit

import boto3


def mlflow_client():
    """MLflow's client, imported only by the probes that talk to MLflow (importing mlflow
    costs seconds of CPU, which the buckets probe has no use for)."""
    from mlflow import MlflowClient

    return MlflowClient()


def s3(prefix=""):
    """A client with the keys of the user whose Secret was loaded with this env prefix."""
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get(f"{prefix}AWS_ENDPOINT_URL"),
        aws_access_key_id=os.environ[f"{prefix}AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ[f"{prefix}AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ.get(f"{prefix}AWS_REGION"),
    )


class Report:
    def __init__(self):
        self.failed = 0

    def check(self, what, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'} {what}{': ' + detail if detail and not ok else ''}", flush=True)
        self.failed += not ok

    def done(self):
        sys.exit(1 if self.failed else 0)


def buckets(report):
    for prefix, names in (("", os.environ["TRAINING_BUCKETS"]), ("ARGO_", os.environ["ARGO_BUCKETS"])):
        client = s3(prefix)
        for bucket in names.split(","):
            try:
                client.head_bucket(Bucket=bucket)
                client.list_objects_v2(Bucket=bucket, MaxKeys=1)
                report.check(f"bucket {bucket} answers over the S3 API ({prefix.lower().rstrip('_') or 'training'} user)", True)
            except Exception as err:  # noqa: BLE001 (any S3 error is the finding)
                report.check(f"bucket {bucket} answers over the S3 API", False, type(err).__name__)


def mlflow_run(report):
    client = mlflow_client()
    run = client.get_run(os.environ["RUN_ID"])
    report.check("MLflow has the run with its parameters", {"C", "max_iter"} <= set(run.data.params), str(sorted(run.data.params)))
    report.check("MLflow has the run's metrics", "accuracy" in run.data.metrics and run.data.metrics["accuracy"] > 0.8, str(run.data.metrics))
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "model")]
    report.check("MLflow has the run's model artifact", "model/model.joblib" in artifacts, str(artifacts))
    version = client.get_model_version(os.environ["MODEL_NAME"], os.environ["VERSION"])
    report.check(f"model {version.name} version {version.version} is registered from the run", version.run_id == run.info.run_id)
    report.check("the version records where it is served", version.tags.get("serving_uri") == os.environ["SERVING_URI"], str(version.tags))
    bucket = os.environ["ARTIFACT_BUCKET"]
    keys = [o["Key"] for o in s3().list_objects_v2(Bucket=bucket, Prefix="").get("Contents", [])]
    report.check(f"the run's artifact is in the {bucket} bucket", any(k.endswith(f"{run.info.run_id}/artifacts/model/model.joblib") for k in keys))
    served = urlsplit(os.environ["SERVING_URI"])
    try:
        s3().head_object(Bucket=served.netloc, Key=f"{served.path.strip('/')}/model.joblib")
        report.check(f"the served model is at {os.environ['SERVING_URI']}", True)
    except Exception as err:  # noqa: BLE001
        report.check(f"the served model is at {os.environ['SERVING_URI']}", False, type(err).__name__)


def cleanup(report):
    client = mlflow_client()
    if os.environ.get("VERSION"):
        client.delete_model_version(os.environ["MODEL_NAME"], os.environ["VERSION"])
        report.check(f"model {os.environ['MODEL_NAME']} version {os.environ['VERSION']} removed", True)
    if os.environ.get("RUN_ID"):
        client.delete_run(os.environ["RUN_ID"])
        report.check(f"run {os.environ['RUN_ID']} removed", True)
    if os.environ.get("SERVING_URI"):
        served = urlsplit(os.environ["SERVING_URI"])
        client_s3 = s3()
        for obj in client_s3.list_objects_v2(Bucket=served.netloc, Prefix=served.path.strip("/") + "/").get("Contents", []):
            client_s3.delete_object(Bucket=served.netloc, Key=obj["Key"])
        report.check(f"{os.environ['SERVING_URI']} removed", True)


def main():
    report = Report()
    {"buckets": buckets, "mlflow": mlflow_run, "cleanup": cleanup}[sys.argv[1]](report)
    report.done()


if __name__ == "__main__":
    main()
