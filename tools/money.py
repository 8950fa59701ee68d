"""Money as people read it, one implementation for the CLI, the answers and the reports.

``money(Decimal("1234.565"))`` -> ``$1,234.57`` (half up; ``1,234.57 CHF`` for a currency without a symbol;
``n/a`` for None); ``unit_money`` keeps up to six decimals below 10 (``$0.014512``) because cents say
nothing about a cost per request or per 1M tokens.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

NA = "n/a"
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def _with_currency(sign: str, text: str, currency: str) -> str:
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def money(value: Decimal | int | None, currency: str = "USD", places: int = 2) -> str:
    """``$1,234.56`` (``1,234.56 CHF`` without a symbol); half up; ``n/a`` for None."""
    if value is None:
        return NA
    q = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return _with_currency("-" if q < 0 else "", f"{abs(q):,.{places}f}", currency)


def unit_money(value: Decimal | int | None, currency: str = "USD") -> str:
    """A unit cost: up to six decimals below 10 (``$0.014512``, at least two), cents above."""
    if value is None:
        return NA
    amount = Decimal(value)
    if abs(amount) >= 10:
        return money(amount, currency)
    q = amount.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    whole, _, frac = f"{abs(q):.6f}".partition(".")
    return _with_currency("-" if q < 0 else "", f"{whole}.{frac.rstrip('0').ljust(2, '0')}", currency)
