"""Test inference container: the SageMaker hosting contract on port 8080, one write per answer.

Behaviour is chosen by environment (set through CreateModel's Environment) and per request:
  ON_START=crash        exit with code 3 before listening
  PHONE_HOME=name,host:port   before listening, resolve the name and open a TCP connection
                        (2 s each at most), as a container that reports home at start-up;
                        "@model": the same, read from /opt/ml/model/home.txt
  PING=hang|fail        never answer /ping, or answer it 500
  Content-Type application/x-mlmarket-command, body JSON, one of:
    {"sleep": seconds}             answer after sleeping
    {"status": code, "body": text} answer with that status
    {"exit": code}                 exit at once, without answering
    {"connect": [host, port]}      try a TCP connection, answer what happened
    {"env": true}                  answer the environment
    {"model": true}                answer the files under /opt/ml/model
    {"whoami": true}               answer the container's hostname, interfaces and addresses
    {"write": path}                try to write a file, answer what happened
    {"units": n}                   answer 200 declaring n inferences (X-Amzn-Inference-Metering)
    {"privileges": true}           answer CapEff, NoNewPrivs and the pids cgroup's limit
    {"bytes": n}                   answer 200 with n bytes
    {"fork_bomb": true}            start a fork bomb beside the server, answer at once
    {"devices": true}              answer the GPU device nodes under /dev (nvidia0 …)
    {"stream": [parts], "every": s, "then": "end"|"break"|"hang"}
                                   answer 200 chunked, one chunk per part, "every" seconds
                                   apart; then end the body, close the connection mid-body,
                                   or never finish
  anything else: echo the body, its Content-Type and custom attributes, transformed by
    TRANSFORM=upper     upper-cased
    FAIL_ON=text        answer 400 when the body contains text
    SLOW_ON=text        answer after SLOW_SECONDS (30) when the body contains text
    LEAK_MB=n           keep n MiB more in memory after each answer, never freed
  EXEC_PARAMS=json      answer GET /execution-parameters with it (404 otherwise)
  ON_SIGTERM=ignore     keep serving through SIGTERM (as PID 1 without a handler does)
"""

import asyncio
import itertools
import json
import os
import signal
import socket
import sys
import time

COMMAND = "application/x-mlmarket-command"
LEAKED = []  # LEAK_MB's allocations, kept for good


def answer(status, body=b"", content_type="application/octet-stream", extra=()):
    reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}.get(status, "Status")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        f"X-Container-Host: {socket.gethostname()}",
    ]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def probe(host, port):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return {"connected": True}
    except OSError as exc:
        return {"connected": False, "error": str(exc)}


def local_addresses():
    """Every IPv4 address of this network namespace, as the kernel's routing table lists them."""
    found = set()
    with open("/proc/net/fib_trie") as f:
        lines = f.read().splitlines()
    for previous, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line:
            found.add(previous.split()[-1])
    return sorted(found)


def model_files():
    root = "/opt/ml/model"
    found = {}
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read(200).decode(errors="replace")
    return found


async def command(body):
    cmd = json.loads(body)
    if "sleep" in cmd:
        await asyncio.sleep(cmd["sleep"])
        return answer(200, b"slept", "text/plain")
    if "status" in cmd:
        return answer(cmd["status"], cmd.get("body", "").encode(), "text/plain")
    if "exit" in cmd:
        os._exit(cmd["exit"])
    if "connect" in cmd:
        result = await asyncio.to_thread(probe, *cmd["connect"])
        return answer(200, json.dumps(result).encode(), "application/json")
    if "env" in cmd:
        return answer(200, json.dumps(dict(os.environ)).encode(), "application/json")
    if "model" in cmd:
        return answer(200, json.dumps(model_files()).encode(), "application/json")
    if "whoami" in cmd:
        me = {
            "hostname": socket.gethostname(),
            "interfaces": sorted(os.listdir("/sys/class/net")),
            "addresses": local_addresses(),
        }
        return answer(200, json.dumps(me).encode(), "application/json")
    if "units" in cmd:
        metering = json.dumps({"Dimension": "inference.count", "ConsumedUnits": cmd["units"]})
        return answer(200, b"metered", "text/plain", [("X-Amzn-Inference-Metering", metering)])
    if "bytes" in cmd:
        return answer(200, b"b" * cmd["bytes"], "application/octet-stream")
    if "privileges" in cmd:
        with open("/proc/self/status") as f:
            status = dict(line.split(":\t", 1) for line in f.read().splitlines())
        limit = "unknown"
        for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
            if os.path.exists(path):
                with open(path) as f:
                    limit = f.read().strip()
        result = {
            "CapEff": status["CapEff"].strip(),
            "NoNewPrivs": status["NoNewPrivs"].strip(),
            "pids.max": limit,
        }
        return answer(200, json.dumps(result).encode(), "application/json")
    if "devices" in cmd:
        found = sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))
        return answer(200, json.dumps(found).encode(), "application/json")
    if "fork_bomb" in cmd:
        if os.fork() == 0:
            while True:  # every process forks on; past the pids limit, forks fail
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.01)
        return answer(200, b"bombing", "text/plain")
    if "write" in cmd:
        try:
            with open(cmd["write"], "w") as f:
                f.write("x")
            result = {"written": True}
        except OSError as exc:
            result = {"written": False, "error": str(exc)}
        return answer(200, json.dumps(result).encode(), "application/json")
    return answer(400, b"unknown command", "text/plain")


async def stream(writer, cmd):
    """A chunked answer written part by part; False when the connection is to be dropped."""
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"X-Amzn-SageMaker-Custom-Attributes: streamed\r\n\r\n"
    )
    await writer.drain()
    for index, part in enumerate(cmd["stream"]):
        if index:
            await asyncio.sleep(cmd.get("every", 0))
        data = part.encode()
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()
    then = cmd.get("then", "end")
    if then == "hang":
        await asyncio.sleep(3600)
    if then == "break":
        return False
    writer.write(b"0\r\n\r\n")
    return True


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if os.environ.get("LOG_REQUESTS"):
                print(f"{method} {path} {len(body)} bytes", flush=True)
            if path == "/ping":
                mode = os.environ.get("PING")
                if mode == "hang":
                    await asyncio.sleep(3600)
                writer.write(answer(500 if mode == "fail" else 200))
            elif path == "/execution-parameters" and os.environ.get("EXEC_PARAMS"):
                writer.write(answer(200, os.environ["EXEC_PARAMS"].encode(), "application/json"))
            elif path == "/invocations" and method == "POST":
                ctype = headers.get("content-type", "application/octet-stream")
                fail_on = os.environ.get("FAIL_ON", "").encode()
                slow_on = os.environ.get("SLOW_ON", "").encode()
                if ctype == COMMAND and "stream" in json.loads(body):
                    if not await stream(writer, json.loads(body)):
                        break
                elif ctype == COMMAND:
                    writer.write(await command(body))
                elif fail_on and fail_on in body:
                    writer.write(answer(400, b"cannot handle this record", "text/plain"))
                else:
                    if os.environ.get("LEAK_MB"):
                        LEAKED.append(b"x" * (int(os.environ["LEAK_MB"]) << 20))
                    if slow_on and slow_on in body:
                        await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "30")))
                    if os.environ.get("TRANSFORM") == "upper":
                        body = body.upper()
                    extra = []
                    if "x-amzn-sagemaker-custom-attributes" in headers:
                        extra.append(
                            (
                                "X-Amzn-SageMaker-Custom-Attributes",
                                headers["x-amzn-sagemaker-custom-attributes"],
                            )
                        )
                    if "accept" in headers:
                        extra.append(("X-Seen-Accept", headers["accept"]))
                    writer.write(answer(200, body, ctype, extra))
            else:
                writer.write(answer(404, b"not found", "text/plain"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def phone_home(spec):
    name, _, address = spec.partition(",")
    host, _, port = address.rpartition(":")
    socket.setdefaulttimeout(2.0)
    try:
        socket.getaddrinfo(name, 443)
    except OSError as exc:
        print(f"could not resolve {name}: {exc}", flush=True)
    try:
        socket.create_connection((host, int(port)), timeout=2.0).close()
    except OSError as exc:
        print(f"could not reach {host}:{port}: {exc}", flush=True)
    socket.setdefaulttimeout(None)


async def main():
    if os.environ.get("ON_START") == "crash":
        print("crashing on purpose", flush=True)
        sys.exit(3)
    home = os.environ.get("PHONE_HOME")
    if home == "@model":
        path = "/opt/ml/model/home.txt"
        home = None
        if os.path.exists(path):
            with open(path) as f:
                home = f.read().strip()
    if home:
        phone_home(home)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    if os.environ.get("ON_SIGTERM") != "ignore":
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await asyncio.start_server(handle, "0.0.0.0", 8080, backlog=1024)
    print("serving on 8080", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        print(f"expected 'serve', got {sys.argv[1:]}", flush=True)
        sys.exit(2)
    asyncio.run(main())
