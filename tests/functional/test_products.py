"""The product catalogue through the API: messages show a product's name, not its id."""

from __future__ import annotations


def test_put_and_get_a_product(client):
    body = {"name": "Espresso beans 1 kg", "url": "https://shop.example/p/7", "category": "coffee", "consumable": True}
    resp = client.request("PUT", "/v1/products/SKU-7", body)
    assert resp.status == 200, resp.body
    got = client.request("GET", "/v1/products/SKU-7")
    assert got.status == 200 and got.json()["name"] == "Espresso beans 1 kg" and got.json()["consumable"] is True
    assert client.request("GET", "/v1/products/SKU-8").status == 404


def test_a_bad_product_is_a_400_naming_the_field(client):
    resp = client.request("PUT", "/v1/products/SKU-7", {"name": "x", "url": "not a url"})
    assert resp.status == 400 and resp.json()["message"].startswith("url")
