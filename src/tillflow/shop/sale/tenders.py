"""Tenders: what a customer pays a checkout with, as asked and as recorded, and the rules
that settle a total with them or split a refund back over them. Money in integer cents.

A checkout is paid with cash, one card, or both (split):

* the card is charged exactly what it pays: at least 1 cent, at most the total;
* cash is the amount handed over: it must cover at least what the card leaves
  (``change`` = cash handed − that rest); cash where the card leaves nothing is refused;
* at most one cash and one card tender (the terminal's idempotency key is the checkout id);
* no tenders at all (``None``, what callers before payments sent) means the exact total in
  cash — recorded as such, so every recorded checkout says how it was paid.

A refund goes back to the original tender: to the card first, up to what it paid net of
its earlier refunds, then the rest in cash from the drawer; more than was paid is
:class:`~tillflow.shop.errors.RefundExceedsPayment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from tillflow.shop import validation
from tillflow.shop.errors import InvalidField, RefundExceedsPayment

CASH: Final = "cash"
CARD: Final = "card"
MAX_TENDERS: Final = 2
MAX_AMOUNT: Final = validation.MAX_PRICE * validation.MAX_QUANTITY * validation.MAX_LINES
"""The most cents one tender may carry: the largest total a checkout can reach."""


class Tender(msgspec.Struct, frozen=True):
    """A tender as the till asks for it. ``type`` is ``"cash"`` (``amount``: cents handed
    over) or ``"card"`` (``amount``: cents to charge; ``card``: the reference or token the
    terminal read, never a card number — only card tenders carry one)."""

    type: str
    amount: int
    card: str | None = None


class PaidTender(msgspec.Struct, frozen=True):
    """A tender as recorded. ``amount``: the cents it paid towards the total. Cash also has
    ``handed`` (the change is ``handed - amount``); a card its ``card`` reference and the
    terminal's authorization ``code`` and ``reference``."""

    type: str
    amount: int
    handed: int = 0
    card: str | None = None
    code: str | None = None
    reference: str | None = None


class RefundTender(msgspec.Struct, frozen=True):
    """Part of a refund: ``amount`` cents back in cash, or to a card — the approval it names
    (``authorization``) and the terminal's ``reference`` of the refund."""

    type: str
    amount: int
    authorization: str | None = None
    reference: str | None = None


def settle(total: int, tenders: object, field: str = "tenders") -> tuple[list[PaidTender], int]:
    """The recorded tenders and change for ``total`` paid with ``tenders`` (card tenders
    not yet authorized). Raises :class:`InvalidField` naming ``tenders``, ``tenders[i]`` or
    ``tenders[i].amount`` / ``.type`` / ``.card`` and the value, whatever was passed."""
    if tenders is None:
        return [PaidTender(CASH, total, handed=total)], 0
    if not isinstance(tenders, (list, tuple)):
        raise validation.invalid(field, tenders, "must be a list of tenders")
    if not 1 <= len(tenders) <= MAX_TENDERS:
        raise InvalidField(field, len(tenders), f"must hold 1 to {MAX_TENDERS} tenders")
    by_type: dict[str, tuple[int, Tender]] = {}
    for index, tender in enumerate(tenders):
        where = f"{field}[{index}]"
        _check(where, tender)
        if tender.type in by_type:
            raise InvalidField(f"{where}.type", tender.type, f"at most one {tender.type} tender")
        by_type[tender.type] = (index, tender)
    card = by_type.get(CARD)
    cash = by_type.get(CASH)
    rest = total
    paid: dict[int, PaidTender] = {}
    if card is not None:
        index, tender = card
        if tender.amount > total:
            raise InvalidField(
                f"{field}[{index}].amount", tender.amount, f"a card pays at most the {total} due"
            )
        if cash is None and tender.amount != total:
            raise InvalidField(
                f"{field}[{index}].amount",
                tender.amount,
                f"the card must pay the whole {total} due, or add cash for the rest",
            )
        rest -= tender.amount
        paid[index] = PaidTender(CARD, tender.amount, card=tender.card)
    change = 0
    if cash is not None:
        index, tender = cash
        if card is not None and rest == 0:
            raise InvalidField(
                f"{field}[{index}].amount", tender.amount, "the card pays it all: no cash is due"
            )
        if tender.amount < rest:
            raise InvalidField(
                f"{field}[{index}].amount", tender.amount, f"cash must cover the {rest} left due"
            )
        change = tender.amount - rest
        paid[index] = PaidTender(CASH, rest, handed=tender.amount)
    return [paid[index] for index in sorted(paid)], change


def _check(where: str, tender: object) -> None:
    """One tender's own fields (see :class:`Tender`)."""
    try:
        kind, amount, card = tender.type, tender.amount, tender.card  # type: ignore[attr-defined]
    except AttributeError as error:
        raise validation.invalid(where, tender, "must be a tender (type, amount)") from error
    if kind not in (CASH, CARD):
        raise validation.invalid(f"{where}.type", kind, "must be 'cash' or 'card'")
    low = 1 if kind == CARD else 0
    validation.whole_number(f"{where}.amount", amount, low, MAX_AMOUNT)
    if kind == CARD:
        validation.identifier(f"{where}.card", card)
    elif card is not None:
        raise validation.invalid(f"{where}.card", card, "only a card tender carries a card")


def card_of(paid: Sequence[PaidTender]) -> tuple[int, PaidTender] | None:
    """The card tender of ``paid`` and its index, if there is one."""
    for index, tender in enumerate(paid):
        if tender.type == CARD:
            return index, tender
    return None


def has_card(parts: Sequence[PaidTender | RefundTender]) -> bool:
    """Whether a card pays (or is refunded) any of ``parts``."""
    return any(part.type == CARD for part in parts)


def as_asked(paid: Sequence[PaidTender]) -> list[tuple[str, int, str | None]]:
    """What the till asked for to record ``paid``: (type, amount, card) per tender."""
    return [
        (tender.type, tender.handed if tender.type == CASH else tender.amount, tender.card)
        for tender in paid
    ]


def paid_with(total: int, paid: Sequence[PaidTender]) -> list[PaidTender]:
    """``paid`` as recorded, or for a checkout recorded before tenders existed (none
    recorded): the exact total in cash, which is what it was taken as."""
    return list(paid) if paid else [PaidTender(CASH, total, handed=total)]


def refunded_with(refund_total: int, refunds: Sequence[RefundTender]) -> list[RefundTender]:
    """``refunds`` as recorded, or for a return recorded before tenders existed: cash."""
    return list(refunds) if refunds else [RefundTender(CASH, refund_total)]


def split_refund(
    checkout_id: str,
    paid: Sequence[PaidTender],
    earlier: Sequence[Sequence[RefundTender]],
    refund: int,
) -> list[RefundTender]:
    """``refund`` cents split over the checkout's tenders (card first, then cash), net of
    the ``earlier`` refunds of its returns. Card parts have no refund ``reference`` yet.
    Raises :class:`RefundExceedsPayment` when the tenders have less than that left."""
    refunded: dict[str, int] = {}
    for before in earlier:
        for part in before:
            refunded[part.type] = refunded.get(part.type, 0) + part.amount
    owed = refund
    parts: list[RefundTender] = []
    for tender in sorted(paid, key=lambda tender: tender.type != CARD):
        left = tender.amount - refunded.get(tender.type, 0)
        share = min(owed, max(left, 0))
        if share:
            parts.append(RefundTender(tender.type, share, authorization=tender.reference))
            owed -= share
    if owed:
        left = sum(tender.amount for tender in paid) - sum(refunded.values())
        raise RefundExceedsPayment(checkout_id, refund, left)
    return parts
