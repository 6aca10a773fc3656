"""`make data-service`: a tf.data service dispatcher and workers in this process, for a demonstration and tests.

On a cluster, the dispatcher runs on one host and the workers on CPU hosts of their own (each
`tf.data.experimental.service.WorkerServer` pointed at the dispatcher); trainers then set
data.service=grpc://DISPATCHER:PORT and send them their input pipeline.
"""

from __future__ import annotations

import tensorflow as tf

from alexnet.data.options import fixed_parallelism

AUTOTUNE = tf.data.AUTOTUNE


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


def through_service(dataset: tf.data.Dataset, address: str, job_name: str) -> tf.data.Dataset:
    """dataset, processed by the workers of the tf.data service whose dispatcher is at address.

    Everything up to here (reading, decoding, augmentation, batching) runs on the service's workers, which
    may be CPU hosts of their own; the trainer only receives batches. "parallel_epochs": every service worker
    runs the whole pipeline and the trainer takes batches from all of them, so with one service worker an
    epoch holds exactly the examples of the local pipeline. Consumers sharing job_name share one job.
    """
    distributed = dataset.apply(tf.data.experimental.service.distribute(
        processing_mode="parallel_epochs", service=address, job_name=job_name))
    options = fixed_parallelism()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return distributed.prefetch(AUTOTUNE).with_options(options)
