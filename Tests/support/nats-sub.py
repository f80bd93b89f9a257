#!/usr/bin/env python3
"""An independent NATS subscriber (nats-py), used by the demo and the e2e suite.

Subscribes to a subject, signals readiness once the server has the subscription, and writes
each message payload as one line (JSON events never contain a raw newline) to --out, or
pretty-printed to stdout with --pretty. Stops after --count messages, after --timeout
seconds, or on SIGTERM/SIGINT. Exits 1 when --count was given and not reached.
"""
import argparse
import asyncio
import json
import signal
import sys

import nats


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="nats://HOST:PORT")
    ap.add_argument("--subject", required=True)
    ap.add_argument("--out", help="file to append payloads to, one per line (default stdout)")
    ap.add_argument("--ready-file", help="created once the subscription is active")
    ap.add_argument("--count", type=int, default=0, help="exit after this many messages (0: no limit)")
    ap.add_argument("--timeout", type=float, default=0, help="exit after this many seconds (0: no limit)")
    ap.add_argument("--pretty", action="store_true", help="pretty-print JSON payloads")
    ap.add_argument("--tls-ca", help="CA file to verify a TLS server with (tls:// URLs)")
    ap.add_argument("--tls-cert", help="client certificate, for servers that demand one")
    ap.add_argument("--tls-key", help="client key (with --tls-cert)")
    args = ap.parse_args()

    tls = {}
    if args.tls_ca or args.tls_cert:
        import ssl
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.tls_ca)
        if args.tls_cert:
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls["tls"] = ctx

    out = open(args.out, "ab") if args.out else sys.stdout.buffer
    done = asyncio.Event()
    received = 0

    async def on_msg(msg):
        nonlocal received
        received += 1
        if args.pretty:
            try:
                text = json.dumps(json.loads(msg.data), indent=2, ensure_ascii=False)
            except ValueError:
                text = msg.data.decode("utf-8", "replace")
            out.write(text.encode() + b"\n")
            out.flush()
        else:
            out.write(msg.data + b"\n")
        if args.count and received >= args.count:
            done.set()

    async def flusher():
        while not done.is_set():
            out.flush()
            await asyncio.sleep(0.1)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)

    nc = await nats.connect(servers=[args.server], max_reconnect_attempts=-1, reconnect_time_wait=0.5, **tls)
    await nc.subscribe(args.subject, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await nc.flush()
    if args.ready_file:
        open(args.ready_file, "w").close()
    print(f"nats-sub: subscribed to {args.subject!r} on {args.server}", file=sys.stderr, flush=True)

    flush_task = asyncio.create_task(flusher())
    try:
        if args.timeout:
            await asyncio.wait_for(done.wait(), args.timeout)
        else:
            await done.wait()
    except asyncio.TimeoutError:
        pass
    done.set()
    await flush_task
    await nc.drain()
    out.flush()
    print(f"nats-sub: {received} message(s)", file=sys.stderr, flush=True)
    return 1 if args.count and received < args.count else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
