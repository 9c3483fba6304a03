"""A loopback DNS server answering like Docker's embedded one (127.0.0.11): every running
container by its name and by each network alias, one A record per container, and NXDOMAIN for
anything else. The rollout drill registers a container when it starts and removes it when it
exits, which is when Docker adds and removes its records."""

from __future__ import annotations

import socket
import threading

from dnslib import QTYPE, RCODE, RR, A, DNSRecord


class LoopbackDns:
    def __init__(self) -> None:
        self._records: dict[str, dict[str, str]] = {}  # name -> {container id: address}
        self._lock = threading.Lock()
        self.queries = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def register(self, container_id: str, address: str, names: list[str]) -> None:
        with self._lock:
            for name in names:
                self._records.setdefault(name.lower(), {})[container_id] = address

    def unregister(self, container_id: str) -> None:
        with self._lock:
            for owners in self._records.values():
                owners.pop(container_id, None)

    def lookup(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self._records.get(name.lower().rstrip("."), {}).values())

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                request = DNSRecord.parse(data)
            except Exception:  # a malformed packet is dropped, as a resolver would
                continue
            self.queries += 1
            reply = request.reply()
            name = str(request.q.qname).rstrip(".")
            addresses = self.lookup(name)
            if not addresses:
                reply.header.rcode = RCODE.NXDOMAIN
            elif request.q.qtype == QTYPE.A:
                for address in addresses:
                    reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=600))
            self._sock.sendto(reply.pack(), peer)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2)
