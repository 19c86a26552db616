"""Serve MLflow's /metrics to Prometheus (the metrics container of the MLflow pod).

MLflow's basic auth lets only admins read /metrics (3.17: the route has no permission
of its own and the auth app fails closed), and Prometheus should hold no admin login.
This runs beside the server in its pod, which holds the admin login already, reads
/metrics over loopback with it and serves that, and nothing else, on its own port."""

import base64
import http.server
import os
import urllib.error
import urllib.request

UPSTREAM = os.environ.get("MLFLOW_METRICS_UPSTREAM", "http://127.0.0.1:5000/metrics")
PORT = int(os.environ.get("MLFLOW_METRICS_PORT", "9102"))
LOGIN = base64.b64encode(f"{os.environ['MLFLOW_AUTH_ADMIN_USERNAME']}:{os.environ['MLFLOW_AUTH_ADMIN_PASSWORD']}".encode()).decode()


class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path != "/metrics":
            self.send_error(404)
            return
        # localhost is one of the Host names the server admits.
        upstream = urllib.request.Request(UPSTREAM, headers={"Authorization": f"Basic {LOGIN}", "Host": "localhost"})
        try:
            with urllib.request.urlopen(upstream, timeout=10) as response:
                body, content_type = response.read(), response.headers.get("Content-Type", "text/plain")
        except (urllib.error.URLError, OSError) as err:
            self.send_error(502, f"MLflow did not answer: {type(err).__name__}")
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Metrics).serve_forever()
