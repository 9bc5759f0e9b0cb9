"""Run moto's server on a free loopback port until standard input closes.

Prints "PORT <n>" once the server answers. Used by testkit::Moto so that the server dies
with the test process that started it, even if that process is killed.
"""
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"PORT {port}", flush=True)
sys.stdin.read()
server.stop()
