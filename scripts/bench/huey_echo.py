"""The peer baseline of `yard bench-engine`: Huey (PyPI) with its SQLite storage.

Each echo task is enqueued, claimed (dequeued), executed and its result read
back, all through the SQLite file, so every task is as durable as a yard job
(both use SQLite's defaults: WAL, synchronous FULL). No consumer process: its
idle back-off would measure sleeping, not the queue; this is the queue's own
cost, the same thing `yard bench-engine` measures of the engine (it polls
without delay). Sequential: one task at a time. Concurrent: N threads, each
enqueueing its tasks and executing whichever task it claims until its own
result is back.

Usage: python3 huey_echo.py DB_PATH JOBS CONCURRENCY
Prints: huey  per job  p50 X ms  p99 Y ms  sequential S jobs/s  concurrent(N) C jobs/s
"""
import sys
import threading
import time

import huey as huey_module
from huey import SqliteHuey

path, jobs, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
assert huey_module.__version__ == "3.5.4", huey_module.__version__
queue = SqliteHuey("bench", filename=path)


@queue.task()
def echo(text, n):
    return {"text": text, "n": n}


def run_one(n):
    result = echo("bench %d" % n, n)
    while True:
        task = queue.dequeue()
        if task is not None:
            queue.execute(task)
        value = result.get()
        if value is not None:
            if value["n"] != n:
                raise SystemExit("task %d read back %r" % (n, value))
            return


for n in range(50):  # warm: the file, the connection, the task registry
    run_one(-1 - n)

latencies = []
start = time.perf_counter()
for n in range(jobs):
    t = time.perf_counter()
    run_one(n)
    latencies.append((time.perf_counter() - t) * 1000)
sequential = time.perf_counter() - start

errors = []


def worker(index):
    try:
        for n in range(jobs + index, 2 * jobs, concurrency):
            run_one(n)
    except BaseException as error:  # reported below: a lost task fails the benchmark
        errors.append(error)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
start = time.perf_counter()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
concurrent = time.perf_counter() - start
if errors:
    raise SystemExit("concurrent run failed: %r" % errors[0])

latencies.sort()
p50 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.5))]
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
print("huey  per job  p50 %.3f ms  p99 %.3f ms  sequential %.0f jobs/s  concurrent(%d) %.0f jobs/s"
      % (p50, p99, jobs / sequential, concurrency, jobs / concurrent))
