"""The demo seller's regressor: linear regression by gradient descent on CSV (label first).

train  one epoch per `epoch_seconds`, checkpointing to /opt/ml/checkpoints after each, so a
       spot interruption resumes where it stopped; writes /opt/ml/model/model.json
serve  POST /invocations with CSV rows answers one prediction per row and declares the rows as
       inference units (X-Amzn-Inference-Metering); Content-Type application/x-sandbox-report
       answers what the container sees of its sandbox (network interfaces, cgroup limits)
"""

import asyncio
import csv
import io
import json
import os
import signal
import sys
import time

ML = "/opt/ml"
CHECKPOINT = f"{ML}/checkpoints/state.json"


def rows_of(root):
    rows = []
    for base, _, names in os.walk(root):
        for name in sorted(names):
            with open(os.path.join(base, name)) as f:
                rows += [[float(x) for x in r] for r in csv.reader(f) if r]
    return rows


def train():
    with open(f"{ML}/input/config/hyperparameters.json") as f:
        hyper = json.load(f)
    epochs = int(hyper.get("epochs", "30"))
    rate = float(hyper.get("learning_rate", "0.05"))
    pause = float(hyper.get("epoch_seconds", "0.1"))
    rows = rows_of(f"{ML}/input/data/train")
    if not rows:
        with open(f"{ML}/output/failure", "w") as f:
            f.write("ClientError: the train channel holds no rows")
        sys.exit(1)
    width = len(rows[0])
    state = {"epoch": 0, "weights": [0.0] * width}
    if os.path.exists(CHECKPOINT):
        with open(CHECKPOINT) as f:
            state = json.load(f)
        print(f"resuming from checkpoint at epoch {state['epoch']}", flush=True)
    weights = state["weights"]
    for epoch in range(state["epoch"], epochs):
        gradient = [0.0] * width
        error_sum = 0.0
        for row in rows:
            features = [1.0, *row[1:]]
            error = sum(w * x for w, x in zip(weights, features, strict=True)) - row[0]
            error_sum += error * error
            for i, x in enumerate(features):
                gradient[i] += 2 * error * x / len(rows)
        weights = [w - rate * g for w, g in zip(weights, gradient, strict=True)]
        print(f"epoch={epoch} mse={error_sum / len(rows):.6f}", flush=True)
        if os.path.isdir(f"{ML}/checkpoints"):
            with open(CHECKPOINT + ".tmp", "w") as f:
                json.dump({"epoch": epoch + 1, "weights": weights}, f)
            os.replace(CHECKPOINT + ".tmp", CHECKPOINT)
        time.sleep(pause)
    with open(f"{ML}/model/model.json", "w") as f:
        json.dump({"weights": weights}, f)


def sandbox():
    def read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None

    # cgroup v2 first, then v1
    memory = read("/sys/fs/cgroup/memory.max") or read(
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    quota, period = (read("/sys/fs/cgroup/cpu.max") or "max 100000").split()
    if quota == "max":
        quota = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") or "-1"
        period = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us") or "100000"
    return {
        "interfaces": sorted(os.listdir("/sys/class/net")),
        "memory_bytes": int(memory) if memory and memory.isdigit() else None,
        "cpus": int(quota) / int(period) if int(quota) > 0 else None,
    }


def predict(weights, body):
    out = io.StringIO()
    count = 0
    for row in csv.reader(io.StringIO(body.decode())):
        if row:
            features = [1.0] + [float(v) for v in row]
            out.write(f"{sum(w * v for w, v in zip(weights, features, strict=True)):.4f}\n")
            count += 1
    return out.getvalue().encode(), count


async def serve():
    with open(f"{ML}/model/model.json") as f:
        weights = json.load(f)["weights"]

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _method, path, _ = lines[0].split(" ", 2)
                headers = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (h.partition(":") for h in lines[1:])
                )
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload, extra = 200, b"", ""
                if path == "/invocations":
                    if headers.get("content-type") == "application/x-sandbox-report":
                        payload = json.dumps(sandbox()).encode()
                    else:
                        try:
                            payload, count = predict(weights, body)
                            metering = {"Dimension": "inference.count", "ConsumedUnits": count}
                            extra = f"X-Amzn-Inference-Metering: {json.dumps(metering)}\r\n"
                        except ValueError as exc:
                            status, payload = 400, str(exc).encode()
                elif path != "/ping":
                    status = 404
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: text/csv\r\n{extra}"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with await asyncio.start_server(handle, "0.0.0.0", 8080):
        await stop


if __name__ == "__main__":
    if sys.argv[1:] == ["train"]:
        train()
    elif sys.argv[1:] == ["serve"]:
        asyncio.run(serve())
    else:
        sys.exit(f"expected train or serve, got {sys.argv[1:]}")
