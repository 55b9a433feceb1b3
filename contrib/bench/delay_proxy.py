#!/usr/bin/python3
"""A TCP proxy on loopback that adds a fixed delay each way, so that an S3 server on this
machine looks as far away as a real one (the kernel here has no netem).

    delay_proxy.py --listen-port P --target-port T --rtt-ms 20

Every piece of data is delivered rtt/2 after it arrived, in order, without waiting for the
pieces before it to be delivered first: the delay is added, the bandwidth is kept (a pipe of
length rtt/2, not a stop-and-wait link).  Connection set-up pays a round trip too."""

import argparse
import asyncio
import collections
import signal


async def pump(reader, writer, delay):
    q = collections.deque()
    ev = asyncio.Event()
    done = False

    async def deliver():
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

    task = asyncio.ensure_future(deliver())
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(1 << 18)
            q.append((loop.time() + delay, data or None))
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


async def handle(cr, cw, target, delay):
    await asyncio.sleep(delay)   # the SYN's way there ...
    try:
        sr, sw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cw.close()
        return
    await asyncio.sleep(delay)   # ... and the SYN-ACK's way back
    await asyncio.gather(pump(cr, sw, delay), pump(sr, cw, delay), return_exceptions=True)
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
    a = ap.parse_args()
    delay = a.rtt_ms / 2000.0
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a.target_port, delay),
                                     "127.0.0.1", a.listen_port)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, stop.set)
    async with srv:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
