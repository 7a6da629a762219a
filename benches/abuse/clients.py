"""Hostile and careless clients against onus's /validate, for benches/abuse/run.sh.

Every loop here is bounded in count and time and targets 127.0.0.1 only.
"""
import http.client
import json
import random
import socket
import ssl
import statistics
import string
import sys
import threading
import time

PORT, CA = int(sys.argv[1]), sys.argv[2]
CTX = ssl.create_default_context(cafile=CA)
CTX.set_alpn_protocols(["http/1.1"])


def review(obj, kind=("apps", "v1", "Deployment"), op="CREATE", ns="abuse"):
    g, v, k = kind
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u", "kind": {"group": g, "version": v, "kind": k},
                                   "operation": op, "namespace": ns, "object": obj}}).encode()


DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "abuse"},
          "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1.27",
                                                         "env": [{"name": "B", "value": "s3://some-bucket"}]}]}}}}


def post(body, conn=None, timeout=30):
    own = conn is None
    if own:
        conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=timeout)
    t = time.perf_counter()
    conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    took = time.perf_counter() - t
    if own:
        conn.close()
    return r.status, took


def latencies(seconds, out):
    """Normal reviews on one keep-alive connection for `seconds`."""
    conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=30)
    end = time.time() + seconds
    while time.time() < end:
        try:
            status, took = post(review(DEPLOY), conn)
            out.append((status, took))
        except Exception:
            out.append((0, 0.0))
            conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=30)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")


def summary(name, samples):
    ok = [t for s, t in samples if s == 200]
    print(f"   {name}: {len(samples)} reviews, {len(ok)} answered 200, p50 {pct(ok, 0.5):.2f} ms, p99 {pct(ok, 0.99):.2f} ms")


def case_wildcard_policy():
    print("== one review with a 100 KB wildcard IAM policy, while normal reviews flow")
    base = []
    latencies(5, base)
    summary("before", base)
    stmt = lambda eff: {"Effect": eff, "Action": ["*" + "a*" * 35 + str(i) for i in range(600)], "Resource": "*"}
    doc = json.dumps({"Statement": [stmt("Allow"), stmt("Deny")]})
    policy = {"apiVersion": "iam.services.k8s.aws/v1alpha1", "kind": "Policy",
              "metadata": {"name": "p", "namespace": "abuse"}, "spec": {"name": "p", "policyDocument": doc}}
    body = review(policy, kind=("iam.services.k8s.aws", "v1alpha1", "Policy"))
    during = []
    t = threading.Thread(target=latencies, args=(5, during))
    t.start()
    status, took = post(body)
    t.join()
    print(f"   the {len(body) // 1024} KB review: HTTP {status} in {took * 1000:.1f} ms")
    summary("during", during)


def case_slow_bodies(n=200, size=2 * 1024 * 1024, seconds=20):
    print(f"== {n} clients trickling {size // (1024 * 1024)} MiB bodies for {seconds} s")
    socks, answers = [], {}
    for _ in range(n):
        try:
            s = CTX.wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=10), server_hostname="127.0.0.1")
            s.sendall(f"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode())
            socks.append(s)
        except Exception:
            pass
    during = []
    t = threading.Thread(target=latencies, args=(seconds, during))
    t.start()
    end = time.time() + seconds
    chunk = b"a" * 16384
    while time.time() < end:
        for s in socks:
            try:
                s.sendall(chunk)
            except Exception:
                pass
        time.sleep(0.5)
    t.join()
    for s in socks:
        try:
            s.settimeout(1)
            line = s.recv(64).split(b"\r\n")[0].decode(errors="replace")
            answers[line] = answers.get(line, 0) + 1
        except Exception as e:
            answers[type(e).__name__] = answers.get(type(e).__name__, 0) + 1
        s.close()
    print(f"   {len(socks)} connections opened; what they got: {answers}")
    summary("normal reviews meanwhile", during)


def case_random_kinds(n=2000):
    print(f"== {n} reviews with random kinds and operations")
    conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=30)
    rnd = random.Random(7)
    codes = {}
    for _ in range(n):
        word = "".join(rnd.choice(string.ascii_letters) for _ in range(rnd.randint(5, 2000)))
        body = review({"apiVersion": "x/v1", "kind": word, "metadata": {"name": "a"}},
                      kind=("x.example", "v1", word), op=word[:8].upper())
        status, _ = post(body, conn)
        codes[status] = codes.get(status, 0) + 1
    print(f"   answers: {codes}")


for case in sys.argv[3:]:
    {"wildcard": case_wildcard_policy, "slow": case_slow_bodies, "kinds": case_random_kinds}[case]()
