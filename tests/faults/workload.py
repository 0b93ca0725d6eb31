"""The shop a fault run rings up: a few products with more stock than any run sells, and
baskets derived from a sequence number (the same basket every time ``seq`` is rung up)."""

from __future__ import annotations

import random

from tillflow.shop.assembly import Shop
from tillflow.shop.inventory.commands import ReceiveStock
from tillflow.shop.sale.commands import AddProduct, Checkout, LineRequest

PRODUCTS = tuple(f"p{number}" for number in range(8))
STOCK = 1_000_000
"""Units delivered of each product before the run (the most one delivery takes); a run
that sells more goes short, which the truth accounts for as well."""


def stock_the_shop(shop: Shop) -> dict[str, int]:
    """Add every product and deliver its stock; what was received, by product."""
    for number, product_id in enumerate(PRODUCTS):
        shop.sale.add_product(AddProduct(product_id, f"Product {number}", 100 + 7 * number))
        shop.inventory.receive(ReceiveStock(product_id, STOCK))
    return dict.fromkeys(PRODUCTS, STOCK)


def checkout_id(seq: int) -> str:
    return f"fault-{seq:08d}"


def checkout(seq: int, till_id: str = "till-1") -> Checkout:
    """Checkout ``seq``: 1–3 distinct products, 1–3 units each, the same for the same ``seq``."""
    rng = random.Random(seq)
    products = rng.sample(PRODUCTS, rng.randint(1, 3))
    lines = [LineRequest(product_id, rng.randint(1, 3)) for product_id in products]
    return Checkout(checkout_id(seq), till_id, lines)
