"""The docs page as the users service serves it: Swagger UI from the installed
package, all three documents, nothing from anywhere else. (A real browser runs
it through the gateway: tests/e2e/test_docs_page.py.)"""

import re

import pytest

pytestmark = pytest.mark.integration


def test_the_page_lists_every_services_document(client):
    page = client.get("/docs")

    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for service in ("users", "products", "orders"):
        assert f'"url": "/openapi/{service}.json"' in html


def test_every_asset_is_served_from_here(client):
    html = client.get("/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)

    assert assets and all(asset.startswith("/docs/") for asset in assets), assets  # no CDN, no other host
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.data) > 100


def test_a_missing_asset_is_a_json_404(client):
    response = client.get("/docs/nothing.js")

    assert response.status_code == 404
    assert response.get_json() == {"message": "Not found."}
