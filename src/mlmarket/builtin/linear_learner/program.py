"""Linear learner: least-squares regression on CSV (label first), trained and served per the
SageMaker container contract."""

import asyncio
import csv
import io
import json
import os
import signal
import sys

ML = "/opt/ml"


def solve(matrix, vector):
    """Gaussian elimination with partial pivoting; raises on a singular system."""
    n = len(vector)
    a = [[*row[:], vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            raise ValueError("the features are linearly dependent")
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=False)]
    return [a[i][n] / a[i][i] for i in range(n)]


def fail(reason):
    with open(f"{ML}/output/failure", "w") as f:
        f.write(reason)
    sys.exit(1)


def train():
    with open(f"{ML}/input/config/hyperparameters.json") as f:
        hyper = json.load(f)
    l2 = float(hyper.get("l2", "0"))
    rows = []
    root = f"{ML}/input/data/train"
    for base, _, names in os.walk(root):
        for name in sorted(names):
            with open(os.path.join(base, name)) as f:
                rows += [[float(x) for x in r] for r in csv.reader(f) if r]
    if not rows:
        fail("ClientError: the train channel holds no rows")
    y = [r[0] for r in rows]
    x = [[1.0, *r[1:]] for r in rows]
    k = len(x[0])
    xtx = [
        [sum(row[i] * row[j] for row in x) + (l2 if i == j and i else 0) for j in range(k)]
        for i in range(k)
    ]
    xty = [sum(row[i] * t for row, t in zip(x, y, strict=False)) for i in range(k)]
    try:
        weights = solve(xtx, xty)
    except ValueError as exc:
        fail(f"ClientError: {exc}")
    mse = sum(
        (sum(w * v for w, v in zip(weights, row, strict=False)) - t) ** 2
        for row, t in zip(x, y, strict=False)
    ) / len(y)
    print(f"#train_mse={mse:.6f}", flush=True)
    with open(f"{ML}/model/model.json", "w") as f:
        json.dump({"weights": weights}, f)


def predict(weights, body):
    out = io.StringIO()
    for row in csv.reader(io.StringIO(body.decode())):
        if row:
            features = [1.0] + [float(v) for v in row]
            out.write(f"{sum(w * v for w, v in zip(weights, features, strict=False)):.6f}\n")
    return out.getvalue().encode()


async def serve():
    with open(f"{ML}/model/model.json") as f:
        weights = json.load(f)["weights"]

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _method, path, _ = lines[0].split(" ", 2)
                length = next(
                    (
                        int(h.split(":")[1])
                        for h in lines
                        if h.lower().startswith("content-length:")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                status, payload = 200, b""
                if path == "/invocations":
                    try:
                        payload = predict(weights, body)
                    except ValueError as exc:
                        status, payload = 400, str(exc).encode()
                elif path != "/ping":
                    status = 404
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: text/csv\r\nContent-Length: %d"
                    b"\r\n\r\n%s" % (status, len(payload), payload)
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
