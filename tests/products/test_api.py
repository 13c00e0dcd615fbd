import pytest
import requests

pytestmark = pytest.mark.integration

AUTH = {"X-User-Id": "7"}


def test_create_and_read_a_product(client):
    response = client.post(
        "/products", json={"name": "Quantum Mechanical Keyboard", "price": 249.99, "quantity": 50}, headers=AUTH
    )
    assert response.status_code == 201
    product = response.get_json()
    assert product == {"id": product["id"], "name": "Quantum Mechanical Keyboard", "price": 249.99, "quantity": 50}
    assert client.get(f"/products/{product['id']}").get_json() == product


def test_prices_are_exact_two_decimal_numbers(client):
    response = client.post("/products", json={"name": "Pen", "price": 0.1, "quantity": 1}, headers=AUTH)
    # Raw JSON, not the parsed float: the wire must say 0.1, not "0.1" or 0.1000000000000000055.
    assert b'"price":0.1' in response.data
    response = client.post("/products", json={"name": "Desk", "price": 1234567.89, "quantity": 1}, headers=AUTH)
    assert b'"price":1234567.89' in response.data


def test_creating_needs_an_identity(client):
    response = client.post("/products", json={"name": "Pen", "price": 1, "quantity": 1})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body, field",
    [
        ({"price": 1, "quantity": 1}, "name"),
        ({"name": "   ", "price": 1, "quantity": 1}, "name"),
        ({"name": "x" * 201, "price": 1, "quantity": 1}, "name"),
        ({"name": "Pen", "price": 1.999, "quantity": 1}, "price"),
        ({"name": "Pen", "price": 0, "quantity": 1}, "price"),
        ({"name": "Pen", "price": -5, "quantity": 1}, "price"),
        ({"name": "Pen", "price": 1e30, "quantity": 1}, "price"),
        ({"name": "Pen", "price": "NaN", "quantity": 1}, "price"),
        ({"name": "Pen", "price": True, "quantity": 1}, "price"),
        # Numbers are JSON numbers: Decimal() would read each of these strings.
        ({"name": "Pen", "price": "12.34", "quantity": 1}, "price"),
        ({"name": "Pen", "price": "1_000", "quantity": 1}, "price"),
        ({"name": "Pen", "price": " 5 ", "quantity": 1}, "price"),
        ({"name": "Pen", "price": "\u0661\u0662", "quantity": 1}, "price"),  # Arabic-Indic 12
        ({"name": "Pen", "price": None, "quantity": 1}, "price"),
        ({"name": "Pen", "price": [1], "quantity": 1}, "price"),
        ({"name": "Pen", "price": 1, "quantity": -1}, "quantity"),
        ({"name": "Pen", "price": 1, "quantity": 1.5}, "quantity"),
        ({"name": "Pen", "price": 1, "quantity": "3"}, "quantity"),
        ({"name": "Pen", "price": 1, "quantity": "1_000"}, "quantity"),
        ({"name": "Pen", "price": 1, "quantity": "\u0663"}, "quantity"),
        ({"name": "Pen", "price": 1, "quantity": 2**31}, "quantity"),
        ({"name": "Pen", "price": 1, "quantity": 1, "id": 9}, "id"),
        ({"name": "Pen\u0000", "price": 1, "quantity": 1}, "name"),
        ({"name": "Pen\ud800", "price": 1, "quantity": 1}, "name"),
        ({"name": "Pen\u001b[31m", "price": 1, "quantity": 1}, "name"),
        ({"name": ["Pen"], "price": 1, "quantity": 1}, "name"),
    ],
)
def test_invalid_products_are_422_and_not_stored(client, body, field):
    response = client.post("/products", json=body, headers=AUTH)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert client.get("/products").get_json()["total"] == 0


def test_listing_is_paginated(client, make_product):
    ids = [make_product(name=f"P{i}") for i in range(5)]
    page = client.get("/products?page=2&per_page=2").get_json()
    assert [item["id"] for item in page["items"]] == ids[2:4]
    assert (page["page"], page["per_page"], page["total"]) == (2, 2, 5)
    assert client.get("/products?page=9").get_json()["items"] == []
    assert client.get("/products?per_page=1000").status_code == 422


@pytest.mark.parametrize(
    "path",
    ["/products/999", "/products/abc", f"/products/{2**64}", "/products/0", "/products/-1", "/products/1.0"],
)
def test_missing_products_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "message" in response.get_json()


def test_names_keep_their_unicode(client):
    name = "Café ☕ — 東京 🙂 \u202eevil"  # accents, CJK, emoji, a bidi override (a format char, allowed)
    response = client.post("/products", json={"name": f"  {name} ", "price": 1, "quantity": 1}, headers=AUTH)
    assert response.status_code == 201
    assert response.get_json()["name"] == name


def test_unknown_query_parameters_are_422(client):
    response = client.get("/products?per_pag=5")
    assert response.status_code == 422
    assert "per_pag" in response.get_json()["errors"]


@pytest.mark.parametrize(
    "query",
    [
        "page=1_000",
        "page=%20 2",
        "page=2%20",
        "page=+2",
        "page=-1",
        "page=2.0",
        "page=0x2",
        "page=",
        "page=%D9%A2",
        "per_page=%EF%BC%92",
        "page=" + "9" * 20,
    ],
    ids=[
        "underscore",
        "leading-space",
        "trailing-space",
        "plus",
        "negative",
        "fraction",
        "hex",
        "empty",
        "arabic-indic-2",
        "fullwidth-2",
        "20-digits",
    ],
)
def test_page_numbers_are_plain_ascii_digits(client, make_product, query):
    make_product()
    response = client.get(f"/products?{query}")

    assert response.status_code == 422, response.get_json()
    assert {"page", "per_page"} & set(response.get_json()["errors"])


def test_page_numbers_with_leading_zeros_are_still_numbers(client, make_product):
    make_product()

    assert client.get("/products?page=01&per_page=005").get_json()["per_page"] == 5


def test_an_id_in_digits_of_another_script_is_no_route(client, make_product):
    product_id = make_product()
    assert product_id < 10  # a fresh table: the id has one digit, which has an Arabic-Indic twin
    arabic_indic = chr(0x0660 + product_id)

    assert client.get(f"/products/{product_id}").status_code == 200
    assert client.get(f"/products/{arabic_indic}").status_code == 404


# -- the internal API (orders' catalog lookup) ------------------------------------------


def test_the_internal_lookup_answers_on_the_internal_listener(products_url, make_product):
    keyboard, mouse = make_product(price="249.99", quantity=50), make_product(price="59.90", quantity=0)

    response = requests.get(f"{products_url}/internal/products", params={"id": [keyboard, mouse, 999999]}, timeout=5)

    assert response.status_code == 200
    assert sorted(response.json()["products"], key=lambda p: p["id"]) == [
        {"id": keyboard, "price": 249.99, "quantity": 50},
        {"id": mouse, "price": 59.9, "quantity": 0},
    ]


def test_the_internal_lookup_is_not_on_the_public_listener(client, make_product):
    # The gateway reaches the public listener only; the internal API isn't there.
    response = client.get("/internal/products", query_string={"id": make_product()})

    assert response.status_code == 404
    assert response.get_json() == {"message": "Not found."}


@pytest.mark.parametrize(
    "query", ["", "id=x", "id=1_000", "id=%D9%A1", "id=1&other=2", "id=0", "&".join(f"id={n}" for n in range(1, 102))]
)
def test_the_internal_lookup_refuses_what_it_cant_take(products_url, query):
    response = requests.get(f"{products_url}/internal/products?{query}", timeout=5)

    assert response.status_code == 400
    assert "message" in response.json()


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/products", {"name": "Planted", "price": 1, "quantity": 1}),
        ("POST", "/products/{id}/stock", {"add": 1000}),
        ("PATCH", "/products/{id}", {"price": 0.01}),
        ("GET", "/products", None),
        ("GET", "/products/{id}", None),
        ("GET", "/openapi/products.json", None),
    ],
    ids=["create", "restock", "change", "list", "read", "openapi"],
)
def test_the_internal_listener_serves_nothing_but_the_lookup(products_url, make_product, client, method, path, body):
    # Whatever reaches the internal port (orders, by design) sends its own
    # X-User-Id there: the public API must not answer it as if Kong had.
    product = make_product(quantity=5, created_by=7)
    before = client.get("/products").get_json()["total"]

    response = requests.request(
        method, products_url + path.format(id=product), json=body, headers={"X-User-Id": "7"}, timeout=5
    )

    assert response.status_code == 404, response.text
    assert client.get("/products").get_json()["total"] == before
    assert client.get(f"/products/{product}").get_json()["quantity"] == 5


def test_the_internal_api_is_not_in_the_public_document(client):
    assert not [path for path in client.get("/openapi/products.json").get_json()["paths"] if "internal" in path]


# -- changing a product: its creator only, guarded by ETag / If-Match --------------------

OTHER = {"X-User-Id": "8"}


@pytest.fixture
def mine(client):
    """A product created by AUTH's user through the API: (id, its ETag)."""
    created = client.post("/products", json={"name": "Pen", "price": 2.5, "quantity": 10}, headers=AUTH)
    assert created.status_code == 201
    return created.get_json()["id"], created.headers["ETag"]


def test_reading_a_product_gives_its_etag(client, mine):
    product_id, tag = mine

    assert client.get(f"/products/{product_id}").headers["ETag"] == tag


def test_patch_changes_name_and_price_and_moves_the_etag(client, mine):
    product_id, tag = mine

    changed = client.patch(f"/products/{product_id}", json={"price": 3.1}, headers={**AUTH, "If-Match": tag})

    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json() == {"id": product_id, "name": "Pen", "price": 3.1, "quantity": 10}
    assert changed.headers["ETag"] != tag
    renamed = client.patch(
        f"/products/{product_id}", json={"name": "Fountain pen"}, headers={**AUTH, "If-Match": changed.headers["ETag"]}
    )
    assert renamed.get_json()["name"] == "Fountain pen"
    assert client.get(f"/products/{product_id}").get_json()["price"] == 3.1


def test_patch_with_a_stale_etag_is_412_and_changes_nothing(client, mine):
    product_id, tag = mine
    client.patch(f"/products/{product_id}", json={"price": 3}, headers={**AUTH, "If-Match": tag})

    stale = client.patch(f"/products/{product_id}", json={"price": 4}, headers={**AUTH, "If-Match": tag})

    assert stale.status_code == 412
    assert "message" in stale.get_json()
    assert client.get(f"/products/{product_id}").get_json()["price"] == 3


@pytest.mark.parametrize("if_match", [None, 'W/"1"', "1", ""], ids=["missing", "weak", "unquoted", "empty"])
def test_patch_without_a_matching_strong_etag_is_refused(client, mine, if_match):
    product_id, _ = mine
    headers = AUTH if if_match is None else {**AUTH, "If-Match": if_match}

    response = client.patch(f"/products/{product_id}", json={"price": 4}, headers=headers)

    assert response.status_code == (428 if if_match is None else 412)
    assert client.get(f"/products/{product_id}").get_json()["price"] == 2.5


def test_patch_by_someone_else_is_403_and_a_missing_product_404(client, mine):
    product_id, tag = mine

    theirs = client.patch(f"/products/{product_id}", json={"price": 4}, headers={**OTHER, "If-Match": tag})
    missing = client.patch("/products/999999", json={"price": 4}, headers={**AUTH, "If-Match": tag})

    assert (theirs.status_code, missing.status_code) == (403, 404)
    assert client.get(f"/products/{product_id}").get_json()["price"] == 2.5


@pytest.mark.parametrize(
    "body", [{}, {"quantity": 5}, {"price": 0}, {"name": " "}, {"price": "3"}, {"name": "x", "id": 2}]
)
def test_patch_refuses_bad_changes_with_422(client, mine, body):
    product_id, tag = mine

    response = client.patch(f"/products/{product_id}", json=body, headers={**AUTH, "If-Match": tag})

    assert response.status_code == 422
    assert client.get(f"/products/{product_id}").get_json() == {
        "id": product_id,
        "name": "Pen",
        "price": 2.5,
        "quantity": 10,
    }


def test_restock_adds_to_the_stock(client, mine):
    product_id, tag = mine

    response = client.post(f"/products/{product_id}/stock", json={"add": 5}, headers=AUTH)

    assert response.status_code == 200
    assert response.get_json()["quantity"] == 15
    # Stock is not what the ETag versions: a pending PATCH stays valid.
    assert client.get(f"/products/{product_id}").headers["ETag"] == tag


def test_restock_by_someone_else_is_403(client, mine):
    product_id, _ = mine

    assert client.post(f"/products/{product_id}/stock", json={"add": 5}, headers=OTHER).status_code == 403
    assert client.post("/products/999999/stock", json={"add": 5}, headers=AUTH).status_code == 404
    assert client.get(f"/products/{product_id}").get_json()["quantity"] == 10


@pytest.mark.parametrize("body", [{}, {"add": 0}, {"add": -1}, {"add": 1.5}, {"add": "5"}, {"add": 2**31}])
def test_restock_refuses_bad_amounts_with_422(client, mine, body):
    product_id, _ = mine

    assert client.post(f"/products/{product_id}/stock", json=body, headers=AUTH).status_code == 422
    assert client.get(f"/products/{product_id}").get_json()["quantity"] == 10


def test_restock_beyond_the_largest_stock_is_409_not_a_500(client, mine):
    product_id, _ = mine

    response = client.post(f"/products/{product_id}/stock", json={"add": 2**31 - 5}, headers=AUTH)

    assert response.status_code == 409
    assert client.get(f"/products/{product_id}").get_json()["quantity"] == 10


def test_restocks_racing_reservations_lose_nothing(products_app, client, mine, stock_of):
    """Restocks through the API and reservations by the worker's handler, at once:
    the stock ends exactly where the sum of both says."""
    from concurrent.futures import ThreadPoolExecutor

    from common.events import contracts
    from products.inventory import lock_events, reserve_stock
    from products.models import db

    product_id, _ = mine

    def restock(_):
        return products_app.test_client().post(f"/products/{product_id}/stock", json={"add": 2}, headers=AUTH)

    def reserve(order_id):
        event = contracts.ORDER_CREATED.new(
            order_id=order_id, user_id=1, items=[{"product_id": product_id, "quantity": 1}]
        )
        with products_app.app_context():
            locked = lock_events([event])
            [outcome] = reserve_stock(event, locked)
            locked.save()
            db.session.commit()
            return outcome.type

    with ThreadPoolExecutor(max_workers=8) as pool:
        restocks = [pool.submit(restock, n) for n in range(20)]
        reservations = [pool.submit(reserve, order_id) for order_id in range(1, 21)]
        assert all(future.result().status_code == 200 for future in restocks)
        taken = [future.result() for future in reservations].count("inventory.reserved")

    assert stock_of(product_id) == 10 + 20 * 2 - taken
