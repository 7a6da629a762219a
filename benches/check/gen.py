#!/usr/bin/env python3
"""A corpus for the `onus check` benchmark: FILES files of OBJECTS objects each, one namespace per
file (a Namespace, a default-deny NetworkPolicy, ServiceAccounts, ConfigMaps, Deployments and
Services, some with gaps), and one AWS IaaS ResponsibilityBaseline per namespace.

    gen.py OUT_DIR [FILES] [OBJECTS]      defaults: 100 files of 100 objects (10,000 objects)
"""
import os
import sys

out = sys.argv[1]
files = int(sys.argv[2]) if len(sys.argv) > 2 else 100
per = int(sys.argv[3]) if len(sys.argv) > 3 else 100
os.makedirs(out, exist_ok=True)
DIGEST = "sha256:4b7e1c9d2a3f5e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"


def deployment(ns, i):
    bad = i % 7 == 0
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc-{i}" + (":latest" if bad else f"@{DIGEST}")
    security = (
        "          securityContext: {privileged: true}\n"
        if bad
        else "          securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, "
        "capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}\n"
    )
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc-{i}
  namespace: {ns}
  labels: {{app.kubernetes.io/name: svc-{i}, app.kubernetes.io/part-of: {ns}, team: payments}}
  annotations: {{onus.dev/uses: "s3://{ns}-data-{i % 5}"}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: svc-{i}}}
  template:
    metadata:
      labels: {{app: svc-{i}, version: v{i % 3}}}
    spec:
      serviceAccountName: app-{i % 2}
      containers:
        - name: app
          image: {image}
          ports: [{{containerPort: 8080, name: http}}]
          env:
            - {{name: LOG_LEVEL, value: info}}
            - {{name: BUCKET, value: "s3://{ns}-data-{i % 5}/in"}}
            - name: FEATURE_FLAGS
              valueFrom: {{configMapKeyRef: {{name: flags-{i % 4}, key: flags}}}}
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: 500m, memory: 256Mi}}
          readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 5}}
          livenessProbe: {{httpGet: {{path: /live, port: http}}, periodSeconds: 10}}
{security}          volumeMounts: [{{name: tmp, mountPath: /tmp}}]
      volumes: [{{name: tmp, emptyDir: {{}}}}]
"""


def service(ns, i):
    return f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: {ns}}}
spec:
  selector: {{app: svc-{i}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


for f in range(files):
    ns = f"team-{f:03d}"
    docs = [
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{team: {ns}}}}}\n",
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: {ns}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n",
    ]
    for a in range(2):
        docs.append(
            f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-{a}\n  namespace: {ns}\n"
            f"  annotations: {{eks.amazonaws.com/role-arn: 'arn:aws:iam::123456789012:role/{ns}-app-{a}'}}\n"
        )
    for c in range(4):
        docs.append(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: flags-{c}, namespace: {ns}}}\n"
            f"data: {{flags: 'checkout=on,search=off', EXPORT: 's3://{ns}-exports'}}\n"
        )
    i = 0
    while len(docs) < per:
        docs.append(deployment(ns, i))
        if len(docs) < per:
            docs.append(service(ns, i))
        i += 1
    with open(os.path.join(out, f"{ns}.yaml"), "w") as fh:
        fh.write("---\n".join(docs))

with open(os.path.join(out, "baselines.yaml"), "w") as fh:
    fh.write(
        "---\n".join(
            f"apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\n"
            f"metadata: {{name: aws-iaas, namespace: team-{f:03d}}}\n"
            f"spec: {{provider: aws, serviceModel: iaas, action: Deny}}\n"
            for f in range(files)
        )
    )
