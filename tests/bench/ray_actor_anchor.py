"""Anchor for actor_bench: Ray's own actor microbenchmarks on this machine, the same patterns as
ray/_private/ray_perf.py (1:1 sync, 1:1 async with 1000 in flight, 1:n and n:n async, placement
group create+remove), printed as JSON lines with the same names.

    .venv-bench/bin/python tests/bench/ray_actor_anchor.py [SECONDS]
"""

import json
import sys
import time

import ray
from ray.util.placement_group import placement_group, remove_placement_group


@ray.remote(num_cpus=1)
class Actor:
    def small_value(self):
        return b"ok"


@ray.remote(num_cpus=0)
class Client:
    def __init__(self, servers):
        self.servers = servers

    def small_value_batch(self, n):
        ray.get([s.small_value.remote() for s in self.servers for _ in range(n)])


def rate(fn, per_round, seconds):
    fn()
    ops, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        ops += per_round
    return ops / (time.perf_counter() - start)


def emit(name, value):
    print(json.dumps({"name": name, "value": round(value, 1), "unit": "per_s"}), flush=True)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    a = Actor.remote()
    b = Actor.remote()
    ray.get([a.small_value.remote(), b.small_value.remote()])
    emit("1_1_actor_calls_sync", rate(lambda: ray.get(a.small_value.remote()), 1, seconds))
    emit(
        "1_1_actor_calls_async",
        rate(lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000, seconds),
    )
    emit(
        "1_n_actor_calls_async",
        rate(
            lambda: ray.get([x.small_value.remote() for x in (a, b) for _ in range(1000)]),
            2000,
            seconds,
        ),
    )
    clients = [Client.remote([a, b]) for _ in range(2)]
    emit(
        "n_n_actor_calls_async",
        rate(lambda: ray.get([c.small_value_batch.remote(1000) for c in clients]), 4000, seconds),
    )
    for actor in (a, b):
        ray.kill(actor)

    # A tiny fractional bundle, as ray_perf.py uses: whole-CPU bundles measure the time Ray takes
    # to hand the CPU back, not placement group creation.
    def pg_round():
        pg = placement_group([{"CPU": 0.01}])
        ray.get(pg.ready())
        remove_placement_group(pg)

    emit("placement_group_create_removal", rate(pg_round, 1, seconds))
    ray.shutdown()


if __name__ == "__main__":
    main()
