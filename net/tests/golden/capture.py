"""Records request frames of real Kafka clients, for the golden tests.

A TCP proxy between a client and a running shardlog (start the broker with
--advertised-listener set to this proxy's address, so the client's later
connections come here too). The first frame of each (API, version) in
API_NAMES are written to OUT/<api>_v<version>_<client>_<n>.bin (n = 1, 2,
3: the first three of each), size prefix included, exactly as the client
sent them.

Usage: capture.py LISTEN_PORT UPSTREAM_HOST:PORT OUT_DIR CLIENT_NAME
(how the frames in this directory were made: see README.md here)"""
import os
import socket
import struct
import sys
import threading

API_NAMES = {0: "produce", 1: "fetch", 3: "metadata", 18: "api_versions"}

listen_port, upstream, out_dir, client = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
up_host, up_port = upstream.rsplit(":", 1)
KEEP = 12
seen = {}
lock = threading.Lock()


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def client_to_broker(client_sock, broker_sock):
    while True:
        prefix = read_exact(client_sock, 4)
        if prefix is None:
            break
        (size,) = struct.unpack(">i", prefix)
        body = read_exact(client_sock, size)
        if body is None:
            break
        api_key, version = struct.unpack(">hh", body[:4])
        name = API_NAMES.get(api_key)
        if name is not None:
            with lock:
                n = seen.get((api_key, version), 0) + 1
                seen[(api_key, version)] = n
                if n <= KEEP:
                    path = os.path.join(out_dir, f"{name}_v{version}_{client}_{n}.bin")
                    with open(path, "wb") as f:
                        f.write(prefix + body)
                    print("captured", path, flush=True)
        broker_sock.sendall(prefix + body)
    broker_sock.close()


def broker_to_client(broker_sock, client_sock):
    while True:
        data = broker_sock.recv(65536)
        if not data:
            break
        client_sock.sendall(data)
    client_sock.close()


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen()
while True:
    conn, _ = server.accept()
    broker = socket.create_connection((up_host, int(up_port)))
    threading.Thread(target=client_to_broker, args=(conn, broker), daemon=True).start()
    threading.Thread(target=broker_to_client, args=(broker, conn), daemon=True).start()
