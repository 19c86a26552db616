"""Train the iris classifier: the platform's example pipeline step (WorkflowTemplate
train-iris, and the smoke check's run of it), and the training step the retraining of
a served model runs (WorkflowTemplate retrain-<model>, docs/lifecycle.md).

Logs its parameters, its accuracy and the model to MLflow (the model through the
tracking server into mlflow-artifacts), registers the model as a new version of
MODEL_NAME with the model's serving location as its tag serving_uri, logs the training
reference the drift jobs compare served requests with (the artifact
reference/reference.json of the run: the training rows, their feature names and the
model's predictions for them; model_drift.py reads it), and puts the model where
KServe reads models: s3://MODEL_BUCKET/MODEL_PREFIX/model.joblib (and, for
the workflow's output artifact, at MODEL_OUTPUT).

What it trains on: DATA_URI, s3://<bucket>/<key>.csv (the training-datasets bucket:
a header row naming the feature columns and a column target), or, empty, scikit-learn's
own iris data. When SERVING_URI names the model directory of the version serving the
model now, that model (model.joblib there) is scored on the same held-out rows as the
new one and logged as the metric serving_accuracy, so the two can be compared.

Everything it needs comes from the Secret mlflow-client (MLFLOW_TRACKING_*, the
training user's S3 keys and endpoint) and these environment variables. Writes its
result as JSON to RESULT_FILE for the workflow's output parameters: with what any
model's training template must give for retraining, {"metric": "accuracy", "score":
<the new version's>, "serving_score": <the serving version's, or null>}."""

import io
import json
import os
import shutil
import tempfile
import urllib.parse

import boto3
import joblib
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def reference_sample(model, rows, feature_names, limit=1000):
    """What the model was trained on, as the drift jobs read it: at most limit rows (in
    the order the model takes its features), and the model's predictions for them."""
    rows = rows[:limit]
    return {"features": feature_names, "rows": rows.tolist(), "predictions": model.predict(rows).tolist(),
            "categorical": [], "prediction_type": "categorical"}


def s3_location(uri):
    """(bucket, key) of an s3://bucket/key URI."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise SystemExit(f"{uri!r} is not an s3://<bucket>/<key> URI")
    return parsed.netloc, parsed.path.strip("/")


def training_data(s3, data_uri):
    """(features, labels, feature names): the CSV at data_uri (a target column and the
    feature columns), or scikit-learn's iris data when data_uri is empty."""
    if not data_uri:
        iris = load_iris()
        return iris.data, iris.target, list(iris.feature_names)
    import pandas

    bucket, key = s3_location(data_uri)
    frame = pandas.read_csv(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    if "target" not in frame.columns or len(frame.columns) < 2:
        raise SystemExit(f"{data_uri}: needs a column target and at least one feature column, has {list(frame.columns)}")
    features = frame.drop(columns=["target"])
    return features.to_numpy(dtype=float), frame["target"].to_numpy(), [str(c) for c in features.columns]


def serving_model(s3, serving_uri, work):
    """The model serving now: model.joblib in its model directory serving_uri."""
    bucket, prefix = s3_location(serving_uri.rstrip("/") + "/model.joblib")
    path = os.path.join(work, "serving.joblib")
    s3.download_file(bucket, prefix, path)
    return joblib.load(path)


def main():
    experiment = os.environ.get("EXPERIMENT", "iris")
    model_name = os.environ.get("MODEL_NAME", "iris")
    bucket = os.environ["MODEL_BUCKET"]
    prefix = os.environ["MODEL_PREFIX"].strip("/")
    regularisation = float(os.environ.get("C", "1.0"))
    data_uri, serving_uri_now = os.environ.get("DATA_URI", "").strip(), os.environ.get("SERVING_URI", "").strip()
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    features, labels, feature_names = training_data(s3, data_uri)
    x_train, x_test, y_train, y_test = train_test_split(features, labels, test_size=0.2, random_state=42, stratify=labels)

    mlflow.set_experiment(experiment)
    client = MlflowClient()
    with mlflow.start_run(run_name=os.environ.get("RUN_NAME") or None) as run:
        model = LogisticRegression(C=regularisation, max_iter=500).fit(x_train, y_train)
        accuracy = float(model.score(x_test, y_test))
        mlflow.log_params({"C": regularisation, "max_iter": 500, "test_size": 0.2, "data_uri": data_uri or "sklearn:load_iris",
                           "rows": len(labels)})
        mlflow.log_metric("accuracy", accuracy)
        mlflow.log_dict(reference_sample(model, x_train, feature_names), "reference/reference.json")
        serving_uri = f"s3://{bucket}/{prefix}"
        serving_score = None
        with tempfile.TemporaryDirectory() as work:
            if serving_uri_now:
                # The same held-out rows as the new model's score: the two are comparable.
                serving_score = float(serving_model(s3, serving_uri_now, work).score(x_test, y_test))
                mlflow.log_param("serving_uri", serving_uri_now)
                mlflow.log_metric("serving_accuracy", serving_score)
            path = os.path.join(work, "model.joblib")
            joblib.dump(model, path)
            mlflow.log_artifact(path, artifact_path="model")
            s3.upload_file(path, bucket, f"{prefix}/model.joblib")
            if os.environ.get("MODEL_OUTPUT"):
                os.makedirs(os.path.dirname(os.environ["MODEL_OUTPUT"]), exist_ok=True)
                shutil.copyfile(path, os.environ["MODEL_OUTPUT"])
        try:
            client.create_registered_model(model_name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            model_name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags={"serving_uri": serving_uri}
        )
    result = {"run_id": run.info.run_id, "model_name": model_name, "model_version": version.version,
              "accuracy": accuracy, "serving_uri": serving_uri, "metric": "accuracy", "score": accuracy, "serving_score": serving_score}
    print(json.dumps(result))
    result_file = os.environ.get("RESULT_FILE", "/tmp/result.json")
    os.makedirs(os.path.dirname(result_file), exist_ok=True)
    with open(result_file, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
