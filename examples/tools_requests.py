"""Tool calls made with ``requests`` carry the agent's run, but only to the hosts you list.

One ``requests.Session`` is instrumented once and shared by four agent runs in four threads;
each tool call carries the run of the thread that makes it. The session may send ids only to
127.0.0.1: a call to another host, or a redirect to one, carries none.

Runs with no outside service: a tiny tool server on 127.0.0.1 in this process prints the run
headers each request brought ("localhost" stands for a third-party host).

    python examples/tools_requests.py
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

from agent_run_id import RunContext, current_run_id, in_current_run
from agent_run_id.requests import instrument

_print_lock = threading.Lock()


def say(text: str) -> None:
    """Print one whole line, even while other threads print."""
    with _print_lock:
        print(text)


class ToolServer(BaseHTTPRequestHandler):
    """A search tool that shows the run each call brought; /go?to=URL redirects."""

    def do_GET(self) -> None:
        """Answer a tool call, or redirect."""
        url = urlsplit(self.path)
        host = self.headers.get("Host", "?").split(":")[0]
        say(f"  {host:>9} got {url.path:<8} X-Run-Id={self.headers.get('X-Run-Id', '-')}")
        if url.path == "/go":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = json.dumps({"results": ["one result"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Keep quiet: do_GET prints what matters."""


def search(session: requests.Session, base: str, query: str) -> int:
    """Call the search tool; the session adds the run."""
    run = current_run_id()
    say(f"run {run} searches {query!r}")
    response = session.get(f"{base}/search", params={"q": query}, timeout=5)
    response.raise_for_status()
    return len(response.json()["results"])


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ToolServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    ours, third_party = f"http://127.0.0.1:{port}", f"http://localhost:{port}"

    session = instrument(requests.Session(), hosts=("127.0.0.1",))

    print("Four runs share one session, each in its own thread:")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for query in ["flights", "weather", "hotels", "trains"]:
            with RunContext():
                futures.append(pool.submit(in_current_run(search), session, ours, query))
        for future in futures:
            future.result()

    print()
    with RunContext():
        search(session, third_party, "on a host outside hosts=")
        session.get(f"{ours}/go", params={"to": f"{third_party}/search"}, timeout=5)
        print("  (the redirect to localhost lost the id we added)")
        session.get(f"{ours}/search", headers={"X-Run-Id": "set-by-caller"}, timeout=5)
        print("  (a header the caller set is never overwritten)")
    session.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
