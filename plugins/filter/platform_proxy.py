"""The login proxies in front of the platform's endpoints: an unprivileged nginx whose
configuration is a ConfigMap and whose credentials (an htpasswd, a token map) are a
Secret mounted at /etc/nginx/auth. monitoring-ui (Prometheus, Alertmanager) and
inference-gateway (InferenceServices) are both built here, so they share one
hardened shape: non-root, read-only root filesystem, no service account token,
spread over nodes, rolled when the configuration or the credentials change."""

from __future__ import annotations

import hashlib


def proxy_documents(name, namespace, labels, config, auth_secret, image, replicas=2, credentials_digest=""):
    """ConfigMap, Service (port 80 to 8080) and Deployment of a login proxy named name.

    config: the nginx server configuration (conf.d/default.conf); auth_secret: the Secret
    mounted read-only at /etc/nginx/auth (mode 0440, nginx's group); credentials_digest: a
    digest of the credentials (never the credentials), so a rotation rolls the pods."""
    labels = dict(labels, **{"app.kubernetes.io/name": name})
    selector = {"app.kubernetes.io/name": name}
    checksum = hashlib.sha256((str(config) + str(credentials_digest)).encode()).hexdigest()
    meta = {"name": name, "namespace": namespace, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"default.conf": str(config)}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": int(replicas),
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"checksum/config": checksum}},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 101,
                            "runAsGroup": 101,
                            # The credentials (mode 0440) are readable by nginx's group.
                            "fsGroup": 101,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "affinity": {
                            "podAntiAffinity": {
                                "preferredDuringSchedulingIgnoredDuringExecution": [
                                    {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}}}
                                ]
                            }
                        },
                        "containers": [
                            {
                                "name": "nginx",
                                "image": str(image),
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "env": [{"name": "NGINX_ENTRYPOINT_QUIET_LOGS", "value": "1"}],
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/nginx/conf.d", "readOnly": True},
                                    {"name": "auth", "mountPath": "/etc/nginx/auth", "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": name}},
                            {"name": "auth", "secret": {"secretName": str(auth_secret), "defaultMode": 0o440}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                    },
                },
            },
        },
    ]


def basic_auth_config(uis, writer, htpasswd="/etc/nginx/auth/htpasswd"):
    """The nginx configuration of a login proxy in front of UIs that have no login of
    their own: for each {name, host, upstream}, a server that asks for HTTP basic auth
    (the bcrypt htpasswd of the proxy's Secret) and proxies to the upstream, which never
    sees the login. Any other host gets 404; /healthz answers the probes."""
    lines = [
        f"# Written by the ml-platform installer ({writer}): the login in",
        "# front of UIs without one, reached through the platform gateway.",
        "server {",
        "    listen 8080 default_server;",
        "    location = /healthz {",
        "        access_log off;",
        '        return 200 "ok\\n";',
        "    }",
        "    location / {",
        "        return 404;",
        "    }",
        "}",
    ]
    for ui in uis:
        lines += [
            "server {",
            "    listen 8080;",
            f"    server_name {ui['host']};",
            f'    auth_basic "ml-platform {ui["name"]}";',
            f"    auth_basic_user_file {htpasswd};",
            "    location / {",
            f"        proxy_pass {ui['upstream']};",
            "        proxy_http_version 1.1;",
            "        proxy_set_header Host $host;",
            "        proxy_set_header X-Forwarded-Proto https;",
            "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "        # The login stops here.",
            '        proxy_set_header Authorization "";',
            "        proxy_read_timeout 300s;",
            "    }",
            "}",
        ]
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {"platform_proxy_documents": proxy_documents, "platform_basic_auth_config": basic_auth_config}
