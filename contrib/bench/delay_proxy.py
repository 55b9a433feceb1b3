#!/usr/bin/python3
"""A TCP proxy on loopback that adds a fixed delay each way, so that an S3 server on this
machine looks as far away as a real one (the kernel here has no netem).

    delay_proxy.py --listen-port P --target-port T --rtt-ms 20 [--conn-mbps 40]

Every piece of data is delivered rtt/2 after it arrived, in order, without waiting for the
pieces before it to be delivered first: the delay is added, the bandwidth is kept (a pipe of
length rtt/2, not a stop-and-wait link).  Connection set-up pays a round trip too.

--conn-mbps caps each connection, each way, at that many MB/s (10^6 bytes), as real S3 does
(tens of MB/s per connection: a client gets more by opening more connections): a piece leaves
the link only when the pieces before it have, at that rate.  Each direction holds at most about
a round trip's worth of data at the cap (at least 1 MiB) before it stops reading, so the
sender is slowed by TCP's own flow control, as on a real link."""

import argparse
import asyncio
import collections
import signal


async def pump(reader, writer, delay, rate):
    q = collections.deque()
    ev = asyncio.Event()
    room = asyncio.Event()
    room.set()
    held = 0                      # bytes read and not yet delivered
    limit = max(1 << 20, int(rate * delay * 4)) if rate else 1 << 30
    done = False
    link_free = 0.0               # when the capped link has sent what it holds

    async def deliver():
        nonlocal held
        loop = asyncio.get_running_loop()
        while True:
            while not q:
                if done:
                    return
                ev.clear()
                await ev.wait()
            due, data = q.popleft()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                return
            writer.write(data)
            await writer.drain()
            held -= len(data)
            if held < limit:
                room.set()

    task = asyncio.ensure_future(deliver())
    loop = asyncio.get_running_loop()
    try:
        while True:
            await room.wait()
            data = await reader.read(1 << 16 if rate else 1 << 18)
            now = loop.time()
            due = now + delay
            if data and rate:
                link_free = max(link_free, now) + len(data) / rate
                due = link_free + delay
            q.append((due, data or None))
            if data:
                held += len(data)
                if held >= limit:
                    room.clear()
            ev.set()
            if not data:
                break
        done = True
        ev.set()
        await task
    except (ConnectionError, asyncio.CancelledError):
        task.cancel()
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def handle(cr, cw, target, delay, rate):
    await asyncio.sleep(delay)   # the SYN's way there ...
    try:
        sr, sw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cw.close()
        return
    await asyncio.sleep(delay)   # ... and the SYN-ACK's way back
    await asyncio.gather(pump(cr, sw, delay, rate), pump(sr, cw, delay, rate), return_exceptions=True)
    for w in (cw, sw):
        try:
            w.close()
        except OSError:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--rtt-ms", type=float, required=True)
    ap.add_argument("--conn-mbps", type=float, default=0,
                    help="cap each connection at this many MB/s each way (0: no cap)")
    a = ap.parse_args()
    delay = a.rtt_ms / 2000.0
    rate = a.conn_mbps * 1e6
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a.target_port, delay, rate),
                                     "127.0.0.1", a.listen_port)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, stop.set)
    async with srv:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
