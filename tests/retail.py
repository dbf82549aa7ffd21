"""What the batch layer writes from the bundled Online Retail extract, for the tests that compare its tables."""

from __future__ import annotations

from etl_lib.config import Layer

#: The batch layer's tables on the bundled extract, in the order it builds them.
RETAIL_TABLES: tuple[tuple[Layer, str], ...] = (
    ("bronze", "online_retail"),
    ("silver", "order_lines"),
    ("silver", "dim_products"),
    ("silver", "dim_customers"),
    ("gold", "customer_features"),
    ("gold", "daily_revenue"),
)
