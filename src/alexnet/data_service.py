"""`make data-service`: a tf.data service dispatcher and workers in this process, for a demonstration and tests.

On a cluster, the dispatcher runs on one host and the workers on CPU hosts of their own (each
`tf.data.experimental.service.WorkerServer` pointed at the dispatcher); trainers then set
data.service=grpc://DISPATCHER:PORT and send them their input pipeline.
"""

from __future__ import annotations

import tensorflow as tf


def start_service(port: int = 0, workers: int = 1) -> tuple[tf.data.experimental.service.DispatchServer, list]:
    """A dispatcher on port (0: any free one) and `workers` workers registered with it; returns both."""
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=port))
    address = dispatcher.target.split("://")[1]
    servers = [service.WorkerServer(service.WorkerConfig(dispatcher_address=address)) for _ in range(workers)]
    return dispatcher, servers


def serve(port: int, workers: int) -> None:
    """Runs a dispatcher and workers until interrupted, saying how to train through them."""
    dispatcher, _ = start_service(port, workers)
    print(f"tf.data service: dispatcher {dispatcher.target}, {workers} worker(s) in this process; train through it "
          f"with make train ARGS=\"data.service={dispatcher.target}\"; Ctrl-C stops", flush=True)
    dispatcher.join()
