"""Ctrl-C twice on a local run that serves: it stops within 10 s and leaves no process or port behind.

The child runs what ``mlauto.ops.run`` runs around serving (``runtime.connect`` with the default
ingress, Serve on a port, ``block_until_stopped``, then ``runtime.stop`` in ``finally``), with a
trivial deployment instead of a trained model.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
import requests

from tests.helpers import free_port

pytestmark = pytest.mark.ray

CHILD = textwrap.dedent("""
    import sys
    from ray import serve
    from mlauto import runtime
    from mlauto.context import block_until_stopped

    port = int(sys.argv[1])
    owned = runtime.connect(None, "stop-test", 1, env=runtime.serve_ingress_env("auto"))

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Echo:
        async def __call__(self, request):
            return "ok"

    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(Echo.bind(), name="echo", route_prefix="/")
        print("READY", flush=True)
        block_until_stopped(f"http://127.0.0.1:{port}")
    finally:
        runtime.stop(owned=owned, served=True)
""")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_two_signals_stop_a_serving_run_in_10s_and_free_the_port(sig, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.time() + 240
        for line in child.stdout:
            if "READY" in line or time.time() > deadline:
                break
        assert child.poll() is None, "the child died before serving"
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=30).text == "ok"
        family = psutil.Process(child.pid).children(recursive=True)
        start = time.time()
        child.send_signal(sig)
        time.sleep(0.5)
        child.send_signal(sig)  # the second signal, during the shutdown
        child.wait(timeout=30)
        took = time.time() - start
        assert took <= 10, f"stopping took {took:.1f}s"
        _, alive = psutil.wait_procs(family, timeout=2)
        assert not alive, [(p.pid, p.name()) for p in alive]
        assert _port_free(port)
    finally:
        if child.poll() is None:
            child.kill()
