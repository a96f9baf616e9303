"""Who may ask and how much they may send: the Host and Origin checks and the body limit,
on the real server, with raw clients that lie about or never finish their bodies."""

from __future__ import annotations

import httpx
import pytest
import trio

from tests.harness import auth_headers, start_service
from tests.web.raw_wire import address, connect, header_lines, read_head, rss_bytes, status_of, upgrade_request
from web.guards import HostNames, default_allowed_hosts, host_of

MiB = 1 << 20


def test_host_names_match_exactly_by_subdomain_or_anything():
    names = HostNames(["gridwatch.example.org", "*.city.example", "[::1]"])
    assert [names.allows(n) for n in ["gridwatch.example.org", "GRIDWATCH.example.org", "a.city.example", "b.a.city.example",
                                      "::1"]] == [True] * 5
    assert [names.allows(n) for n in ["city.example", "evilcity.example", "gridwatch.example.org.evil", "", "127.0.0.1"]] == [False] * 5
    assert HostNames(["*"]).allows("anything.at.all")


def test_host_header_forms():
    assert [host_of(h) for h in ["a.example", "a.example:8080", "[::1]:80", "[::1]", "127.0.0.1:1"]] == \
        ["a.example", "a.example", "::1", "::1", "127.0.0.1"]
    assert [host_of(h) for h in ["a:b", "a:80:80", "[::1", "[::1]x", "a:123456"]] == [None] * 5


def test_default_names_follow_the_bind_host_and_the_public_name():
    assert default_allowed_hosts("127.0.0.1") == ("127.0.0.1", "::1", "localhost")
    assert default_allowed_hosts("0.0.0.0", "map.example.org") == ("127.0.0.1", "::1", "localhost", "map.example.org")
    assert default_allowed_hosts("10.1.2.3") == ("10.1.2.3",)


async def test_a_foreign_host_gets_400_and_a_foreign_websocket_origin_403(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        host, port = address(running.url)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=headers) as http:
            ok = await http.get("/api/config")
            foreign = await http.get("/api/config", headers={"Host": "evil.example"})
            rebinding = await http.get("/healthz", headers={"Host": f"evil.example:{port}"})
            cross_put = await http.put("/api/patrol/plan", content=b"{}", headers={"Origin": "http://evil.example"})
            same_put = await http.put("/api/patrol/plan", content=b"{}", headers={"Origin": f"http://localhost:{port}"})
        handshakes = {}
        for name, origin, host_header in [("same", f"http://{host}:{port}", f"{host}:{port}"),
                                          ("none", None, f"{host}:{port}"),
                                          ("cross", "http://evil.example", f"{host}:{port}"),
                                          ("garbled", "::::", f"{host}:{port}"),
                                          ("foreign_host", None, "evil.example")]:
            stream = await connect(running.url)
            await stream.send_all(upgrade_request(host_header, origin, headers=headers))
            handshakes[name] = status_of(await read_head(stream))
            await stream.aclose()
        refused = running.pipeline.metrics.get("gridwatch_http_refused_total", reason="cross_origin")
        nursery.cancel_scope.cancel()
    assert ok.status_code == 200
    assert (foreign.status_code, foreign.json()) == (400, {"error": "'Host' is not a name this service answers to"})
    assert rebinding.status_code == 400
    assert (cross_put.status_code, cross_put.json()) == (403, {"error": "'Origin' is not a site of this service"})
    assert same_put.status_code == 200
    assert handshakes == {"same": 101, "none": 101, "cross": 403, "garbled": 403, "foreign_host": 400}
    assert refused == 3


async def test_configured_wildcard_names(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("web", allowed_hosts=("*.example.org",))
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=headers) as http:
            answers = [(await http.get("/healthz", headers={"Host": h})).status_code
                       for h in ["map.example.org", "example.org.evil", "127.0.0.1"]]
        nursery.cancel_scope.cancel()
    assert answers == [200, 400, 400]


@pytest.mark.parametrize("declared", ["536870912", "99999999999999999999999999"])
async def test_a_huge_declared_body_is_refused_unread(settings, broker, declared):
    settings = settings.replace("jt808", enabled=False).replace("web", max_body_bytes=MiB)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        host, port = address(running.url)
        stream = await connect(running.url)
        with trio.fail_after(5):
            await stream.send_all(f"PUT /api/patrol/plan HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                                  f"Content-Length: {declared}\r\n{header_lines(headers)}\r\n{{".encode())
            head = await read_head(stream)
        await stream.aclose()
        nursery.cancel_scope.cancel()
    assert status_of(head) == (413 if len(declared) < 20 else 400)


async def test_an_endless_chunked_body_is_cut_off_at_the_limit_without_growing_memory(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("web", max_body_bytes=MiB)
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        host, port = address(running.url)
        before = rss_bytes()
        stream = await connect(running.url)
        sent = 0
        heads: list[bytes] = []

        async def send_forever() -> None:
            nonlocal sent
            await stream.send_all(f"PUT /api/patrol/plan HTTP/1.1\r\nHost: {host}:{port}\r\n"
                                  f"Transfer-Encoding: chunked\r\n{header_lines(headers)}\r\n".encode())
            try:
                while sent < 256 * MiB:
                    await stream.send_all(chunk)
                    sent += len(chunk)
            except trio.BrokenResourceError:
                pass  # the server closed the connection after its 413
            await trio.sleep_forever()

        with trio.fail_after(20):
            async with trio.open_nursery() as client:
                client.start_soon(send_forever)
                heads.append(await read_head(stream))
                client.cancel_scope.cancel()
        grown = rss_bytes() - before
        await stream.aclose()
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=headers) as http:
            still = (await http.get("/healthz")).status_code
        nursery.cancel_scope.cancel()
    assert status_of(heads[0]) == 413
    assert sent < 16 * MiB  # cut off near the limit, not read to the end
    assert grown < 32 * MiB
    assert still == 200
