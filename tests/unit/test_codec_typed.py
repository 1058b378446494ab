"""Typed decoding: the type hint, never the stored data, says what to build."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import (
    Any,
    Generic,
    Literal,
    NamedTuple,
    NewType,
    Optional,
    TypedDict,
    TypeVar,
)
from uuid import UUID

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stateshift.codec import Codec
from stateshift.errors import DeserializationError

codec = Codec()
T = TypeVar("T")
OrderId = NewType("OrderId", str)


class Status(Enum):
    OPEN = "open"
    PAID = "paid"


@dataclass(frozen=True)
class Line:
    sku: str
    price: Decimal
    quantity: int = 1


@dataclass
class Order:
    order_id: OrderId
    status: Status
    placed: datetime
    lines: list[Line]
    by_sku: dict[str, Line] = field(default_factory=dict)
    note: str | None = None
    coupon: Optional[Line] = None  # noqa: UP045 - the old spelling must work too
    window: tuple[date, date] | None = None
    tags: tuple[str, ...] = ()
    total: Decimal = field(init=False, default=Decimal(0))

    def __post_init__(self) -> None:
        self.total = sum((line.price * line.quantity for line in self.lines), Decimal())


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


@dataclass
class Box(Generic[T]):
    item: T


class Address(pydantic.BaseModel):
    city: str
    since: date


class Customer(pydantic.BaseModel):
    customer_id: UUID
    address: Address
    orders: list[Line] = []
    nickname: str | None = pydantic.Field(default=None, alias="nick")


class Point(NamedTuple):
    x: int
    y: float


class Settings(TypedDict):
    level: Status
    since: date


def sample_order() -> Order:
    apple = Line("apple", Decimal("0.99"), 3)
    return Order(
        order_id=OrderId("o-1"),
        status=Status.PAID,
        placed=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        lines=[apple, Line("pear", Decimal("1.25"))],
        by_sku={"apple": apple},
        coupon=Line("c", Decimal("-1")),
        window=(date(2024, 5, 1), date(2024, 5, 8)),
        tags=("gift", "fast"),
    )


def test_nested_dataclasses_decode_from_their_annotations() -> None:
    order = sample_order()

    decoded = codec.decode(codec.encode(order), type_hint=Order)

    assert decoded == order
    assert isinstance(decoded.lines[0], Line)
    assert isinstance(decoded.by_sku["apple"], Line)
    assert isinstance(decoded.window, tuple)
    assert decoded.total == Decimal("4.22")


def test_containers_of_dataclasses_decode_from_the_hint() -> None:
    lines = [Line("a", Decimal(1)), Line("b", Decimal(2))]

    assert codec.decode(codec.encode(lines), type_hint=list[Line]) == lines
    assert codec.decode(codec.encode({"x": lines[0]}), type_hint=dict[str, Line]) == {
        "x": lines[0]
    }
    assert codec.decode(codec.encode(None), type_hint=Line | None) is None


def test_a_dataclass_that_contains_itself_decodes() -> None:
    tree = Node("root", [Node("a", [Node("a1")]), Node("b")])

    assert codec.decode(codec.encode(tree), type_hint=Node) == tree


def test_a_generic_dataclass_decodes_its_type_argument() -> None:
    box = Box(Line("a", Decimal(1)))

    assert codec.decode(codec.encode(box), type_hint=Box[Line]) == box


def test_pydantic_models_decode_with_dataclasses_inside() -> None:
    customer = Customer(
        customer_id=UUID(int=7),
        address=Address(city="Lyon", since=date(2020, 1, 1)),
        orders=[Line("a", Decimal("2.50"))],
        nick="bob",
    )

    data = codec.encode(customer)
    decoded = codec.decode(data, type_hint=Customer)

    assert decoded == customer
    assert codec.decode(data)["nick"] == "bob"
    assert codec.decode(data)["address"] == {"city": "Lyon", "since": date(2020, 1, 1)}


def test_a_pydantic_model_with_a_field_type_the_codec_lacks_still_round_trips() -> None:
    class Tagged(pydantic.BaseModel):
        labels: set[str]

    value = Tagged(labels={"a", "b"})

    assert codec.decode(codec.encode(value), type_hint=Tagged) == value


def test_named_tuples_typed_dicts_literals_and_new_types_decode() -> None:
    assert codec.decode(codec.encode(Point(1, 2.5)), type_hint=Point) == Point(1, 2.5)
    settings = {"level": Status.OPEN, "since": date(2024, 1, 1)}
    assert codec.decode(codec.encode(settings), type_hint=Settings) == settings
    assert codec.decode(codec.encode("a"), type_hint=Literal["a", "b"]) == "a"
    assert codec.decode(codec.encode("o-9"), type_hint=OrderId) == "o-9"


def test_an_enum_decodes_by_its_hint() -> None:
    assert codec.decode(codec.encode(Status.PAID), type_hint=Status) is Status.PAID


def test_unions_keep_a_value_that_already_fits_a_member() -> None:
    assert type(codec.decode(codec.encode(3), type_hint=float | int)) is int
    assert codec.decode(codec.encode(3), type_hint=float) == 3.0
    assert codec.decode(codec.encode("x"), type_hint=int | str) == "x"


def test_hand_written_json_decodes_scalars_from_plain_strings() -> None:
    text = (
        '{"customer_id": "00000000-0000-0000-0000-000000000007",'
        ' "address": {"city": "Lyon", "since": "2020-01-01"}}'
    )
    customer = codec.decode_json(text, type_hint=Customer)
    assert customer.address.since == date(2020, 1, 1)

    @dataclass
    class Payment:
        at: datetime
        amount: Decimal
        ref: UUID
        raw: bytes

    payment = codec.decode_json(
        '{"at":"2024-01-01T10:00:00Z","amount":"9.90",'
        '"ref":"00000000-0000-0000-0000-000000000001","raw":"aGk="}',
        type_hint=Payment,
    )
    assert payment == Payment(
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        Decimal("9.90"),
        UUID(int=1),
        b"hi",
    )


def test_unknown_keys_are_ignored_so_old_rows_read_after_a_field_is_removed() -> None:
    data = codec.encode({"sku": "a", "price": Decimal(1), "colour": "red"})

    assert codec.decode(data, type_hint=Line) == Line("a", Decimal(1))


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        ({"sku": "a"}, Line, "at $: missing field 'price' of Line"),
        ([{"sku": "a", "price": "x"}], list[Line], "at $[0].price: expected Decimal"),
        ({"a": {"sku": 1, "price": 1}}, dict[str, Line], "at $.a.sku: expected str"),
        ("closed", Status, "'closed' is not a value of Status"),
        ([1, 2, 3], tuple[int, int], "expected tuple[int, int], found a list of 3"),
        (True, int, "expected int, found bool"),
        ("c", Literal["a", "b"], "expected Literal['a', 'b']"),
        ({"x": 1}, Point, "expected Point, found dict"),
        ({"level": "open"}, Settings, "missing key 'since' of Settings"),
    ],
)
def test_a_value_that_does_not_fit_the_hint_names_where(
    value: Any, hint: Any, message: str
) -> None:
    with pytest.raises(DeserializationError) as caught:
        codec.decode(codec.encode(value), type_hint=hint, what="input of 'pay'")

    assert message in str(caught.value)
    assert "input of 'pay'" in str(caught.value)


def test_a_pydantic_validation_failure_leaves_the_input_out_of_the_message() -> None:
    data = codec.encode({"customer_id": "secret-value", "address": {"city": "x"}})

    with pytest.raises(DeserializationError) as caught:
        codec.decode(data, type_hint=Customer)

    assert "secret-value" not in str(caught.value)
    assert "customer_id" in str(caught.value)


def test_a_constructor_that_raises_becomes_a_deserialization_error() -> None:
    @dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    with pytest.raises(DeserializationError, match="n must be positive"):
        codec.decode(codec.encode({"n": -1}), type_hint=Positive)


@given(
    st.builds(
        Line,
        sku=st.text(),
        price=st.decimals(allow_nan=False, allow_infinity=False),
        quantity=st.integers(),
    )
)
def test_any_line_round_trips_through_its_type(line: Line) -> None:
    decoded = codec.decode(codec.encode(line), type_hint=Line)
    assert str(decoded.price) == str(line.price)
    assert decoded == line
