"""Run ``scorehoi ARGS`` with every connection and name lookup outside this machine refused and recorded.

``python tests/serve_offline.py LOG app --port N`` patches the socket module before the command imports anything:
a ``connect`` to an address that is not loopback, or a lookup of a host name that is not local, appends one line to
``LOG`` and fails with ``OSError``, as an unplugged network would. A test that finds ``LOG`` empty after driving
the command knows the process made no request that leaves the machine.
"""
import ipaddress
import socket
import sys

from scorehoi_diffusers.cli import main

LOG = sys.argv[1]
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def is_local(host) -> bool:
    if host is None or isinstance(host, bytes) and not host:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def refuse(what: str) -> None:
    with open(LOG, "a") as log:
        log.write(what + "\n")
    raise OSError(f"serve_offline: refused {what}")


def guarded_connect(original):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            refuse(f"connect {address!r}")
        return original(self, address)
    return connect


def guarded_getaddrinfo(original):
    def getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            refuse(f"getaddrinfo {host!r}")
        return original(host, *args, **kwargs)
    return getaddrinfo


socket.socket.connect = guarded_connect(socket.socket.connect)
socket.socket.connect_ex = guarded_connect(socket.socket.connect_ex)
socket.getaddrinfo = guarded_getaddrinfo(socket.getaddrinfo)

if __name__ == "__main__":
    sys.exit(main(sys.argv[2:]))
