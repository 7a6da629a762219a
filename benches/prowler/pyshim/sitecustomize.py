"""Loaded (via PYTHONPATH) only into the Prowler process of benches/prowler/run.sh.

botocore builds S3 Control URLs as http://ACCOUNT.HOST:PORT/... even for a custom endpoint
(the endpoint ruleset prefixes the account id), and 123456789012.127.0.0.1 does not resolve.
This resolves any name ending in ".127.0.0.1" to 127.0.0.1, as a wildcard DNS record would.
It changes name resolution only: Prowler's requests, their Host header and its logic are
untouched. Without it Prowler cannot read the account's Block Public Access from moto.
"""

import socket

_getaddrinfo = socket.getaddrinfo


def _loopback_wildcard(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".127.0.0.1"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_wildcard
