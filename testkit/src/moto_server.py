"""Run moto's server on a free loopback port until standard input closes.

Prints "PORT <n>" once the server answers. Used by testkit::Moto so that the server dies
with the test process that started it, even if that process is killed.

Requests are handled one at a time (a lock around moto's WSGI app, the server itself stays
threaded for keep-alive connections): moto evaluates a DynamoDB condition and applies the write
in separate steps, so concurrent conditional writes could both succeed, which DynamoDB never
allows. Serialising requests gives the stand-in DynamoDB's per-item atomicity.

SQS's ReceiveMessage is the exception: a long poll (WaitTimeSeconds) waits inside moto for up to
its wait, and holding the lock meanwhile would hold every other call (a kill switch's DynamoDB
reads behind a worker's poll, as `bridge local` runs them). It takes no lock; moto's queues take
appends and pops from other threads as Python lists do.
"""
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

dispatcher = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialised(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage"):
        return list(dispatcher(environ, start_response))
    with lock:
        return list(dispatcher(environ, start_response))


server = make_server("127.0.0.1", 0, serialised, threaded=True)
print(f"PORT {server.server_port}", flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
server.shutdown()
