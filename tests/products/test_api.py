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


def test_the_internal_api_is_not_in_the_public_document(client):
    assert not [path for path in client.get("/openapi/products.json").get_json()["paths"] if "internal" in path]
