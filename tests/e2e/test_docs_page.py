"""The interactive API docs in a real browser, through the gateway: Debian's
Chromium, driven by Playwright (which downloads no browser of its own here).

The page must show every operation of all three documents, take nothing from
anywhere but the gateway (no CDN: it works offline), and run GET /products.
"""

import json
import shutil
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import GATEWAY_URL, SHOP_STACK_IS_DOCKER

pytestmark = pytest.mark.e2e

SERVICES = ("users", "products", "orders")
# Chromium on this kind of machine: headless, no sandbox (root), and none of its
# own calls home (the closed network refuses them, many at a time).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_DEADLINE_MS = 30_000


@pytest.fixture(scope="module")
def chromium_path():
    path = shutil.which("chromium")
    if path is None:
        if SHOP_STACK_IS_DOCKER:
            pytest.skip(
                "no chromium on this host: scripts/bootstrap native installs it (docker mode installs no tools)"
            )
        pytest.fail("chromium is not installed: scripts/bootstrap native installs it")
    return path


@pytest.fixture
def page(chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # A fresh profile of the test's own: nothing cached, nothing remembered.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        page = context.new_page()
        page.set_default_timeout(PAGE_DEADLINE_MS)
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        try:
            yield page
        finally:
            context.close()


def documented_operations(service: str) -> set[tuple[str, str]]:
    paths = requests.get(f"{GATEWAY_URL}/openapi/{service}.json", timeout=10).json()["paths"]
    methods = {"get", "post", "put", "patch", "delete"}
    return {(method.upper(), path) for path, item in paths.items() for method in item if method in methods}


def shown_operations(page) -> set[tuple[str, str]]:
    page.wait_for_selector(".opblock")
    blocks = page.locator(".opblock-summary")
    return {
        (
            blocks.nth(index).locator(".opblock-summary-method").inner_text().strip(),
            blocks.nth(index).locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for index in range(blocks.count())
    }


def open_document(page, service: str) -> None:
    page.select_option(".topbar select", label=service)
    page.wait_for_selector(f".information-container .title:has-text('{service} service')")


def try_it_out(page, path: str) -> tuple[str, str]:
    """GET `path` as a person would on the page: open it, "Try it out", "Execute";
    the status and body it shows."""
    operation = page.locator(f".opblock-get:has(.opblock-summary-path[data-path='{path}'])")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    body = operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
    return status.inner_text().strip(), body


def test_the_docs_show_every_operation_of_every_service(page):
    page.goto(f"{GATEWAY_URL}/docs")

    for service in SERVICES:
        open_document(page, service)
        assert shown_operations(page) == documented_operations(service), service
        # Each document has the bearer scheme to authorize with.
        assert page.locator(".btn.authorize").count() == 1, service
    assert all(url.startswith(GATEWAY_URL) for url in page.requested), [
        url for url in page.requested if not url.startswith(GATEWAY_URL)
    ]


def test_the_page_runs_get_products(page, create_product):
    create_product(name="Seen from the docs page")
    page.goto(f"{GATEWAY_URL}/docs")
    open_document(page, "products")

    status, body = try_it_out(page, "/products")

    assert status == "200"
    # What the page got is the catalog, as the API answers it (product among it).
    shown = json.loads(body)
    assert shown["total"] >= 1 and shown == requests.get(f"{GATEWAY_URL}/products", timeout=10).json()
    assert [url for url in page.requested if urlsplit(url).path == "/products"], page.requested


def test_the_page_authorizes_with_a_bearer_token_and_calls_a_protected_operation(page, session_user):
    user_id, auth = session_user
    page.goto(f"{GATEWAY_URL}/docs")
    open_document(page, "users")

    page.locator(".btn.authorize").click()
    page.locator(".auth-container input").fill(auth["Authorization"].removeprefix("Bearer "))
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator(".auth-btn-wrapper button.btn-done").click()
    status, body = try_it_out(page, "/users/me")

    assert status == "200"
    assert json.loads(body)["id"] == user_id
