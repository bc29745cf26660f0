"""The emulator's OData layer: `$filter` parsed and compiled to SQLite, then run against real rows."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from urllib.parse import parse_qsl

import pytest

from dataverse.query import (
    Query,
    contains,
    endswith,
    eq,
    ge,
    gt,
    in_,
    is_not_null,
    is_null,
    le,
    lt,
    ne,
    not_in,
    startswith,
)
from devtools.emulator.filter_sql import compile_filter, like_pattern_to_regex, register_functions
from devtools.emulator.odata import (
    And,
    Column,
    ColumnType,
    Compare,
    ExpandItem,
    Literal,
    LiteralValue,
    Membership,
    Not,
    ODataError,
    Or,
    Path,
    StringFunction,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
    unknown_property,
)

# ------------------------------------------------------------------------------------------------------------ fixture

U1, U2 = uuid.UUID(int=0x101), uuid.UUID(int=0x102)
C1, C2 = uuid.UUID("a1b2c3d4-0000-4000-8000-00000000c001"), uuid.UUID("a1b2c3d4-0000-4000-8000-00000000c002")
A = {label: uuid.UUID(int=i) for i, label in enumerate(("A1", "A2", "A3", "A4", "A5", "A6"), start=1)}

# label, name, employees, revenue, donotemail, createdon, closedate, primary contact, city
ROWS = [
    ("A1", "Ångström Labs", 10, 1000.5, 0, "2024-01-01T00:00:00Z", "2024-03-01", C1, "Malmö"),
    ("A2", "O'Brien & Sons", 250, 250000.0, 1, "2024-06-15T12:30:00Z", None, C2, "Dublin"),
    ("A3", "50% Off", 50, None, 0, "2023-12-31T23:59:59Z", "2024-01-01", None, None),
    ("A4", "500 Club", None, 99.99, None, None, None, C1, "Dublin"),
    ("A5", None, 5, 5.0, 1, "2024-01-01T00:00:01Z", None, None, "Straße"),
    ("A6", "Bracket [Beta]_x", 7, 7.5, 0, "2024-02-01T00:00:00Z", "2024-02-01", C2, "Zürich"),
]
ALL = {"A1", "A2", "A3", "A4", "A5", "A6"}

ACCOUNT: dict[str, ColumnType] = {
    "accountid": "guid",
    "name": "string",
    "numberofemployees": "int",
    "revenue": "decimal",
    "donotemail": "bool",
    "createdon": "datetime",
    "closedate": "date",
    "address1_city": "string",
    "_primarycontactid_value": "guid",
}
SQL_NAMES = {"address1_city": "city", "_primarycontactid_value": "primarycontactid"}
LOOKUPS = {
    ("primarycontactid", "fullname"): "(SELECT c.fullname FROM contact c WHERE c.contactid = a.primarycontactid)",
    ("primarycontactid", "createdby", "fullname"): (
        "(SELECT u.fullname FROM contact c JOIN systemuser u ON u.systemuserid = c.createdby "
        "WHERE c.contactid = a.primarycontactid)"
    ),
}


def resolve(path: Path) -> Column:
    """What the server's resolver does: columns of `account`, lookups as correlated subqueries."""
    if path.segments in LOOKUPS:
        return Column(LOOKUPS[path.segments], "string")
    if len(path.segments) == 1 and path.segments[0] in ACCOUNT:
        name = path.segments[0]
        return Column(f"a.{SQL_NAMES.get(name, name)}", ACCOUNT[name])
    raise unknown_property(path.segments[-1], "account")


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    register_functions(conn)
    conn.executescript(
        """
        CREATE TABLE systemuser (systemuserid TEXT PRIMARY KEY, fullname TEXT);
        CREATE TABLE contact (contactid TEXT PRIMARY KEY, fullname TEXT, createdby TEXT);
        CREATE TABLE account (
            label TEXT, accountid TEXT PRIMARY KEY, name TEXT, numberofemployees INTEGER, revenue REAL,
            donotemail INTEGER, createdon TEXT, closedate TEXT, primarycontactid TEXT, city TEXT
        );
        """
    )
    conn.executemany(
        "INSERT INTO systemuser VALUES (?, ?)", [(str(U1), "System Administrator"), (str(U2), "Ann Other")]
    )
    conn.executemany(
        "INSERT INTO contact VALUES (?, ?, ?)", [(str(C1), "Zoë Adams", str(U1)), (str(C2), "Seán Ó Briain", str(U2))]
    )
    conn.executemany(
        "INSERT INTO account VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (label, str(A[label]), name, emp, rev, dne, created, closed, str(c) if c else None, city)
            for label, name, emp, rev, dne, created, closed, c, city in ROWS
        ],
    )
    yield conn
    conn.close()


def run(db: sqlite3.Connection, text: str, aliases: Mapping[str, str] | None = None) -> set[str]:
    """The labels of the rows `$filter=text` selects."""
    sql, params = compile_filter(parse_filter(text, aliases or {}), resolve)
    return {row[0] for row in db.execute(f"SELECT label FROM account a WHERE {sql}", params)}


def decoded(query: Query) -> tuple[str, dict[str, str]]:
    """`$filter` and the parameter aliases as the server sees them after URL-decoding the client's query string."""
    options = dict(parse_qsl(query.to_query_string(), keep_blank_values=True))
    return options["$filter"], {k: v for k, v in options.items() if k.startswith("@")}


def run_query(db: sqlite3.Connection, query: Query) -> set[str]:
    text, aliases = decoded(query)
    return run(db, text, aliases)


def error_of(text: str, aliases: Mapping[str, str] | None = None) -> ODataError:
    with pytest.raises(ODataError) as info:
        compile_filter(parse_filter(text, aliases or {}), resolve)
    return info.value


# ---------------------------------------------------------------------------------------------------------- parsing


def test_each_comparison_operator_parses_to_a_compare_node() -> None:
    for op in ("eq", "ne", "gt", "ge", "lt", "le"):
        assert parse_filter(f"numberofemployees {op} 5") == Compare(op, Path(("numberofemployees",)), Literal(5))


def test_literals_get_their_python_types() -> None:
    cases: dict[str, LiteralValue] = {
        "'x'": "x",
        "42": 42,
        "-7": -7,
        "1.50": Decimal("1.50"),
        "1e-05": Decimal("0.00001"),
        "true": True,
        "false": False,
        "null": None,
        "2024-02-29": date(2024, 2, 29),
        "2024-01-01T00:00:00Z": datetime(2024, 1, 1, tzinfo=UTC),
        "78914942-34cb-ed11-b596-0022481d68cd": uuid.UUID("78914942-34cb-ed11-b596-0022481d68cd"),
    }
    for text, value in cases.items():
        parsed = parse_filter(f"x eq {text}")
        assert isinstance(parsed, Compare)
        assert isinstance(parsed.right, Literal)
        assert parsed.right == Literal(value), text
        assert type(parsed.right.value) is type(value), text


def test_an_integer_beyond_int64_becomes_a_decimal() -> None:
    assert parse_filter("x eq 9223372036854775808") == Compare("eq", Path(("x",)), Literal(Decimal(2**63)))


def test_a_guid_starting_with_letters_is_a_guid_not_a_property() -> None:
    parsed = parse_filter("accountid eq ABCDEF01-34cb-ed11-b596-0022481d68cd")
    assert parsed == Compare("eq", Path(("accountid",)), Literal(uuid.UUID("abcdef01-34cb-ed11-b596-0022481d68cd")))


def test_a_datetime_with_an_offset_and_fractional_seconds_is_converted_to_utc() -> None:
    parsed = parse_filter("createdon ge 2024-01-01T01:30:00.25+01:00")
    assert parsed == Compare("ge", Path(("createdon",)), Literal(datetime(2024, 1, 1, 0, 30, 0, 250000, tzinfo=UTC)))
    negative = parse_filter("createdon lt 2023-12-31T20:00:00-05:00")
    assert negative == Compare("lt", Path(("createdon",)), Literal(datetime(2024, 1, 1, 1, 0, tzinfo=UTC)))


def test_doubled_quotes_are_one_quote_inside_a_string_literal() -> None:
    assert parse_filter("name eq 'O''Brien'''") == Compare("eq", Path(("name",)), Literal("O'Brien'"))
    assert parse_filter("name eq ''''") == Compare("eq", Path(("name",)), Literal("'"))


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Compare("eq", Path((n,)), Literal(1)) for n in "abc")
    assert parse_filter("a eq 1 or b eq 1 and c eq 1") == Or((a, And((b, c))))
    assert parse_filter("a eq 1 and b eq 1 or c eq 1") == Or((And((a, b)), c))


def test_not_binds_tighter_than_and_and_a_comparison_tighter_than_not() -> None:
    a, b = (Compare("eq", Path((n,)), Literal(1)) for n in "ab")
    assert parse_filter("not a eq 1 and b eq 1") == And((Not(a), b))
    assert parse_filter("not not a eq 1") == Not(Not(a))


def test_parentheses_override_precedence() -> None:
    a, b, c = (Compare("eq", Path((n,)), Literal(1)) for n in "abc")
    assert parse_filter("(a eq 1 or b eq 1) and c eq 1") == And((Or((a, b)), c))
    assert parse_filter("not(a eq 1 or b eq 1)") == Not(Or((a, b)))
    assert parse_filter("((a eq 1))") == a


def test_lookup_paths_keep_every_hop() -> None:
    parsed = parse_filter("primarycontactid/createdby/fullname eq 'x'")
    assert parsed == Compare("eq", Path(("primarycontactid", "createdby", "fullname")), Literal("x"))


def test_string_functions_keep_their_pattern_verbatim() -> None:
    assert parse_filter("contains(name,'50[%]')") == StringFunction("contains", Path(("name",)), "50[%]")
    assert parse_filter("startswith( name , 'O''B' )") == StringFunction("startswith", Path(("name",)), "O'B")
    assert parse_filter("not endswith(name,'x')") == Not(StringFunction("endswith", Path(("name",)), "x"))


def test_in_inline_and_through_aliases_parse_to_the_same_membership() -> None:
    expected = Membership(Path(("lastname",)), ("a", "O'Brien"), negate=False)
    inline = parse_filter("""Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=["a","O'Brien"])""")
    aliased = parse_filter(
        "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
        {"@p1": "'lastname'", "@p2": """["a","O'Brien"]"""},
    )
    reordered = parse_filter("""Microsoft.Dynamics.CRM.In(PropertyValues=["a","O'Brien"], PropertyName='lastname')""")
    assert inline == aliased == reordered == expected
    not_in_ = parse_filter("""Microsoft.Dynamics.CRM.NotIn(PropertyName='x',PropertyValues=["1"])""")
    assert not_in_ == Membership(Path(("x",)), ("1",), negate=True)


def test_an_alias_may_stand_for_a_literal_or_a_property() -> None:
    parsed = parse_filter("@p1 eq @p2", {"@p1": "primarycontactid/fullname", "p2": "'x'"})
    assert parsed == Compare("eq", Path(("primarycontactid", "fullname")), Literal("x"))


def test_select_orderby_and_expand_parse() -> None:
    assert parse_select("name, accountid,revenue") == ("name", "accountid", "revenue")
    assert parse_orderby("name desc, primarycontactid/fullname asc,createdon") == (
        (Path(("name",)), True),
        (Path(("primarycontactid", "fullname")), False),
        (Path(("createdon",)), False),
    )
    assert parse_orderby("@p1 desc", {"@p1": "name"}) == ((Path(("name",)), True),)
    assert parse_expand(
        "primarycontactid($select=fullname,emailaddress1;$expand=parentcustomerid_account($select=name)),ownerid"
    ) == (
        ExpandItem(
            "primarycontactid",
            ("fullname", "emailaddress1"),
            (ExpandItem("parentcustomerid_account", ("name",)),),
        ),
        ExpandItem("ownerid"),
    )


def test_expand_refuses_options_other_than_select_and_expand() -> None:
    with pytest.raises(ODataError, match="supported only for collection-valued navigation properties"):
        parse_expand("Account_Tasks($select=subject;$filter=contains(subject,'x'))")
    with pytest.raises(ODataError, match=r"'\$count' is not supported inside '\$expand'"):
        parse_expand("primarycontactid($count=true)")
    with pytest.raises(ODataError, match="position 10"):
        parse_expand("a($select=)")
    with pytest.raises(ODataError, match=r"expected ';' or '\)'"):
        parse_expand("a($select=b")


def test_select_and_orderby_refuse_what_is_not_a_property() -> None:
    with pytest.raises(ODataError, match=r"position 3 in '\$select': 'b c' is not a property name"):
        parse_select("a, b c")
    with pytest.raises(ODataError, match=r"expected 'property \[asc\|desc\]'"):
        parse_orderby("name sideways")


# ------------------------------------------------------------------------------------------------------------- LIKE


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("50[%]", "50%", True),
        ("50[%]", "500", False),
        ("50%", "500 Club", True),
        ("a_c", "abc", True),
        ("a_c", "ac", False),
        ("a[_]c", "a_c", True),
        ("a[_]c", "abc", False),
        ("[[]x]", "[x]", True),
        ("[]]", "]", True),
        ("x]", "x]", True),
        ("[abc]", "B", True),
        ("[a-c]x", "Cx", True),
        ("[a-c]x", "dx", False),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "ax", False),
        ("[-a]", "-", True),
        ("[z-a]", "m", False),
        ("a[b", "a[b", False),
        ("ÅNG%", "ångström", True),
        ("%.*%", "a.*b", True),
        ("%.*%", "ab", False),
        ("a%", "a\nb", True),
        ("(x)|y", "(x)|y", True),
    ],
)
def test_like_patterns_follow_tsql(pattern: str, text: str, matches: bool) -> None:
    assert bool(re.match(like_pattern_to_regex(pattern), text)) is matches


def test_the_like_regex_is_anchored() -> None:
    regex = like_pattern_to_regex("abc")
    assert re.match(regex, "abc")
    assert not re.match(regex, "abcd")
    assert not re.search(regex, "xabc")


# -------------------------------------------------------------------------------------------------- execution: basics


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("eq", {"A3"}),
        ("ne", ALL - {"A3"}),  # includes A4, whose numberofemployees is null
        ("gt", {"A2"}),
        ("ge", {"A2", "A3"}),
        ("lt", {"A1", "A5", "A6"}),
        ("le", {"A1", "A3", "A5", "A6"}),
    ],
)
def test_every_comparison_operator_selects_the_right_rows(db: sqlite3.Connection, op: str, expected: set[str]) -> None:
    assert run(db, f"numberofemployees {op} 50") == expected


def test_a_literal_on_the_left_is_the_mirrored_comparison(db: sqlite3.Connection) -> None:
    assert run(db, "50 gt numberofemployees") == {"A1", "A5", "A6"}
    assert run(db, "'dublin' eq address1_city") == {"A2", "A4"}


def test_string_equality_ignores_case_including_non_ascii(db: sqlite3.Connection) -> None:
    assert run(db, "name eq 'ÅNGSTRÖM LABS'") == {"A1"}
    assert run(db, "address1_city eq 'MALMÖ'") == {"A1"}
    assert run(db, "address1_city eq 'STRASSE'") == {"A5"}  # casefold: ß = ss


def test_accents_stay_significant(db: sqlite3.Connection) -> None:
    assert run(db, "name eq 'Angstrom Labs'") == set()


def test_an_escaped_apostrophe_matches_the_stored_apostrophe(db: sqlite3.Connection) -> None:
    assert run(db, "name eq 'O''Brien & Sons'") == {"A2"}
    assert run(db, "startswith(name,'o''b')") == {"A2"}


def test_string_ordering_is_case_insensitive(db: sqlite3.Connection) -> None:
    assert run(db, "name ge 'b' and name lt 'P'") == {"A2", "A6"}


def test_and_or_not_precedence_holds_when_executed(db: sqlite3.Connection) -> None:
    assert run(db, "numberofemployees eq 10 or numberofemployees eq 250 and donotemail eq false") == {"A1"}
    assert run(db, "(numberofemployees eq 10 or numberofemployees eq 250) and donotemail eq true") == {"A2"}
    assert run(db, "not numberofemployees eq 10 and donotemail eq true") == {"A2", "A5"}


# ------------------------------------------------------------------------------------------------ string functions


def test_string_functions_are_case_insensitive(db: sqlite3.Connection) -> None:
    assert run(db, "contains(name,'ÅNGSTR')") == {"A1"}
    assert run(db, "startswith(name,'ångström')") == {"A1"}
    assert run(db, "endswith(name,'CLUB')") == {"A4"}
    assert run(db, "contains(primarycontactid/fullname,'ZOË')") == {"A1", "A4"}


def test_bracket_escaped_wildcards_match_literally(db: sqlite3.Connection) -> None:
    assert run(db, "contains(name,'50[%]')") == {"A3"}
    assert run(db, "contains(name,'[[]beta[]]')") == {"A6"}
    assert run(db, "endswith(name,'[_]x')") == {"A6"}
    assert run(db, "contains(name,'t[_]')") == set()


def test_unescaped_wildcards_are_active_as_in_dataverse(db: sqlite3.Connection) -> None:
    assert run(db, "contains(name,'50%')") == {"A3", "A4"}
    assert run(db, "startswith(name,'5_0')") == {"A4"}
    assert run(db, "startswith(name,'[ab]')") == {"A6"}


def test_a_string_function_never_selects_a_null_column_even_negated(db: sqlite3.Connection) -> None:
    assert "A5" not in run(db, "contains(name,'a')")
    assert "A5" not in run(db, "not contains(name,'zzz')")
    assert run(db, "not contains(name,'zzz')") == ALL - {"A5"}


# ------------------------------------------------------------------------------------------------------------ nulls


def test_eq_null_and_ne_null_test_for_null(db: sqlite3.Connection) -> None:
    assert run(db, "name eq null") == {"A5"}
    assert run(db, "null eq name") == {"A5"}
    assert run(db, "name ne null") == ALL - {"A5"}
    assert run(db, "numberofemployees eq null or revenue eq null") == {"A3", "A4"}


def test_ne_a_value_also_selects_rows_where_the_column_is_null(db: sqlite3.Connection) -> None:
    assert run(db, "name ne 'x'") == ALL
    assert run(db, "donotemail ne true") == {"A1", "A3", "A4", "A6"}
    assert run(db, "not (name eq '50% Off')") == ALL - {"A3"}


def test_ordering_comparisons_never_select_null_rows_even_negated(db: sqlite3.Connection) -> None:
    assert run(db, "revenue gt 100") == {"A1", "A2"}
    assert run(db, "not (revenue gt 100)") == {"A4", "A5", "A6"}  # A3 (null revenue) in neither


def test_null_with_an_ordering_operator_is_refused() -> None:
    assert "null can only be compared with 'eq' or 'ne'" in str(error_of("revenue gt null"))


# ------------------------------------------------------------------------------------------------ typed columns


def test_guid_comparisons_ignore_the_literal_case(db: sqlite3.Connection) -> None:
    assert run(db, f"_primarycontactid_value eq {str(C1).upper()}") == {"A1", "A4"}
    assert run(db, f"accountid eq {A['A2']}") == {"A2"}
    assert run(db, f"_primarycontactid_value ne {C1}") == {"A2", "A3", "A5", "A6"}


def test_datetime_comparisons_work_on_the_stored_utc_text(db: sqlite3.Connection) -> None:
    assert run(db, "createdon eq 2024-01-01T01:00:00+01:00") == {"A1"}
    assert run(db, "createdon lt 2024-01-01T00:00:00Z") == {"A3"}
    assert run(db, "createdon ge 2024-02-01T00:00:00Z") == {"A2", "A6"}
    assert run(db, "createdon ge 2024-01-31T19:00-05:00") == {"A2", "A6"}


def test_fractional_seconds_compare_exactly_against_whole_second_storage(db: sqlite3.Connection) -> None:
    assert run(db, "createdon gt 2024-01-01T00:00:00.5Z") == {"A2", "A5", "A6"}
    assert run(db, "createdon ge 2024-01-01T00:00:00.5Z") == {"A2", "A5", "A6"}
    assert run(db, "createdon lt 2024-01-01T00:00:00.5Z") == {"A1", "A3"}
    assert run(db, "createdon le 2024-01-01T00:00:00.5Z") == {"A1", "A3"}
    assert run(db, "createdon eq 2024-01-01T00:00:00.5Z") == set()


def test_a_date_literal_against_a_datetime_column_means_midnight_utc(db: sqlite3.Connection) -> None:
    assert run(db, "createdon lt 2024-01-01") == {"A3"}


def test_date_columns_compare_with_date_literals(db: sqlite3.Connection) -> None:
    assert run(db, "closedate eq 2024-01-01") == {"A3"}
    assert run(db, "closedate gt 2024-01-15") == {"A1", "A6"}


def test_decimal_and_bool_columns(db: sqlite3.Connection) -> None:
    assert run(db, "revenue eq 99.99") == {"A4"}
    assert run(db, "revenue ge 1000.5") == {"A1", "A2"}
    assert run(db, "revenue lt 6") == {"A5"}
    assert run(db, "numberofemployees lt 7.5") == {"A5", "A6"}
    assert run(db, "donotemail eq true") == {"A2", "A5"}
    assert run(db, "donotemail eq false") == {"A1", "A3", "A6"}


def test_columns_compare_with_columns(db: sqlite3.Connection) -> None:
    assert run(db, "numberofemployees eq revenue") == {"A5"}
    assert run(db, "numberofemployees ne revenue") == ALL - {"A5"}
    assert run(db, "revenue gt numberofemployees") == {"A1", "A2", "A6"}


def test_lookup_paths_go_through_the_resolver(db: sqlite3.Connection) -> None:
    assert run(db, "primarycontactid/fullname eq 'ZOË ADAMS'") == {"A1", "A4"}
    assert run(db, "primarycontactid/createdby/fullname eq 'System Administrator'") == {"A1", "A4"}
    assert run(db, "primarycontactid/fullname eq null") == {"A3", "A5"}


# ---------------------------------------------------------------------------------------------------- In / NotIn


def test_in_and_not_in_through_aliases(db: sqlite3.Connection) -> None:
    aliases = {"@p1": "'name'", "@p2": """["ångström labs","O'Brien & Sons","nobody"]"""}
    assert run(db, "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)", aliases) == {"A1", "A2"}
    assert run(db, "Microsoft.Dynamics.CRM.NotIn(PropertyName=@p1,PropertyValues=@p2)", aliases) == {
        "A3",
        "A4",
        "A5",  # a null name is not in the list
        "A6",
    }


def test_in_inline_converts_values_to_the_column_type(db: sqlite3.Connection) -> None:
    assert run(db, """Microsoft.Dynamics.CRM.In(PropertyName='numberofemployees',PropertyValues=["10","250"])""") == {
        "A1",
        "A2",
    }
    guids = f'["{str(C2).upper()}"]'
    assert run(db, f"Microsoft.Dynamics.CRM.In(PropertyName='_primarycontactid_value',PropertyValues={guids})") == {
        "A2",
        "A6",
    }
    assert run(db, """Microsoft.Dynamics.CRM.In(PropertyName='donotemail',PropertyValues=["true"])""") == {"A2", "A5"}
    created = '["2024-01-01T01:00:00+01:00","2024-06-15T12:30:00Z"]'
    assert run(db, f"Microsoft.Dynamics.CRM.In(PropertyName='createdon',PropertyValues={created})") == {"A1", "A2"}


def test_not_in_equals_not_of_in(db: sqlite3.Connection) -> None:
    values = '["10","5"]'
    not_in_rows = run(db, f"Microsoft.Dynamics.CRM.NotIn(PropertyName='numberofemployees',PropertyValues={values})")
    negated = run(db, f"not Microsoft.Dynamics.CRM.In(PropertyName='numberofemployees',PropertyValues={values})")
    assert not_in_rows == negated == {"A2", "A3", "A4", "A6"}


# ------------------------------------------------------------------------------------------ round trips (the client)


PLUS_ONE = timezone(timedelta(hours=1))


class Industry(IntEnum):
    ACCOUNTING = 1
    RETAIL = 250


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query("accounts").where(eq("name", "O'Brien & Sons")), {"A2"}),
        (Query("accounts").where(eq("name", "x' or name ne 'y")), set()),
        (Query("accounts").where(contains("name", "50%")), {"A3"}),
        (Query("accounts").where(contains("name", "[Beta]_")), {"A6"}),
        (Query("accounts").where(startswith("name", "o'b")), {"A2"}),
        (Query("accounts").where(endswith("name", "_x")), {"A6"}),
        (Query("accounts").where(endswith("name", "_X"), contains("name", "ß")), set()),
        (Query("accounts").where(eq("primarycontactid/fullname", "zoë adams")), {"A1", "A4"}),
        (Query("accounts").where(eq("_primarycontactid_value", C2)), {"A2", "A6"}),
        (Query("accounts").where(in_("_primarycontactid_value", [C1, C2]), gt("numberofemployees", 10)), {"A2"}),
        (Query("accounts").where(in_("name", ["ÅNGSTRÖM LABS", "O'Brien & Sons"])), {"A1", "A2"}),
        (Query("accounts").where(not_in("name", ["50% Off", "500 Club"])), {"A1", "A2", "A5", "A6"}),
        (Query("accounts").where(in_("numberofemployees", [Industry.RETAIL, 5])), {"A2", "A5"}),
        (Query("accounts").where(in_("revenue", [Decimal("99.99"), 7.5])), {"A4", "A6"}),
        (Query("accounts").where(in_("donotemail", [True])), {"A2", "A5"}),
        (Query("accounts").where(in_("closedate", [date(2024, 1, 1)])), {"A3"}),
        (Query("accounts").where(is_null("name")), {"A5"}),
        (Query("accounts").where(is_not_null("numberofemployees"), ne("numberofemployees", 5)), ALL - {"A4", "A5"}),
        (Query("accounts").where(eq("numberofemployees", Industry.RETAIL)), {"A2"}),
        (Query("accounts").where(ge("revenue", Decimal("1000.50"))), {"A1", "A2"}),
        (Query("accounts").where(lt("revenue", 5.5)), {"A5"}),
        (Query("accounts").where(le("revenue", 1e-05)), set()),
        (Query("accounts").where(eq("donotemail", False)), {"A1", "A3", "A6"}),
        (Query("accounts").where(ne("donotemail", True)), {"A1", "A3", "A4", "A6"}),
        (
            Query("accounts").where(ge("createdon", datetime(2024, 1, 1, 1, 0, 1, tzinfo=PLUS_ONE))),
            {"A2", "A5", "A6"},
        ),
        (Query("accounts").where(eq("closedate", date(2024, 2, 1))), {"A6"}),
        (Query("accounts").where(eq("numberofemployees", 10) | eq("numberofemployees", 250)), {"A1", "A2"}),
        (Query("accounts").where(~eq("name", "500 Club"), ~contains("name", "labs")), {"A2", "A3", "A6"}),
        (
            Query("accounts").where(
                (eq("address1_city", "dublin") | eq("address1_city", "MALMÖ")) & ~in_("numberofemployees", [250])
            ),
            {"A1", "A4"},
        ),
    ],
)
def test_every_filter_the_client_builds_parses_and_selects_the_right_rows(
    db: sqlite3.Connection, query: Query, expected: set[str]
) -> None:
    assert run_query(db, query) == expected


def test_the_client_in_filter_uses_aliases_and_parses_to_a_membership() -> None:
    text, aliases = decoded(Query("contacts").where(in_("lastname", ["a", "O'Brien"])))
    assert text == "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"
    assert parse_filter(text, aliases) == Membership(Path(("lastname",)), ("a", "O'Brien"), negate=False)


@pytest.mark.parametrize(
    ("text", "lookalike"),
    [("100%", "100x"), ("a_b", "axb"), ("[x]", "x"), ("]", ""), ("%_[]'", "ab[]'"), ("[^a]", "b")],
)
def test_text_the_client_escapes_for_contains_matches_only_itself(text: str, lookalike: str) -> None:
    filter_text, aliases = decoded(Query("accounts").where(contains("name", text)))
    parsed = parse_filter(filter_text, aliases)
    assert isinstance(parsed, StringFunction)
    regex = like_pattern_to_regex(f"%{parsed.pattern}%")
    assert re.match(regex, f"before {text} after")
    assert not re.match(regex, f"before {lookalike} after")


# ------------------------------------------------------------------------------------------------------------ errors


def test_syntax_errors_say_where() -> None:
    cases = {
        "name eq": "position 7 in '$filter': expected a property or a literal, found end of input",
        "(name eq 'x'": "position 12 in '$filter': expected ')', found end of input",
        "name eq 'x' name": "position 12 in '$filter': expected 'and', 'or' or end of input, found 'name'",
        "name 'x'": "position 5 in '$filter': expected a comparison operator",
        "name eq 'x' and": "position 15",
        "name eq 5x": "position 8 in '$filter': unrecognized '5x'",
        "": "empty expression",
        "name in ('a')": "the operator 'in' is not supported",
        "createdon eq 2024-01-01T00:00:00": "needs 'Z' or a UTC offset",
        "closedate eq 2024-02-30": "'2024-02-30' is not a valid date",
        "1 eq 1": "a comparison needs a property on at least one side",
        "contains('x',name)": "the first argument of contains() must be a property",
        "contains(name,5)": "the second argument of contains() must be a string literal",
        "Microsoft.Dynamics.CRM.In(PropertyName='a')": "needs PropertyValues",
        'Microsoft.Dynamics.CRM.In(PropertyName=a,PropertyValues=["x"])': "expected a value for PropertyName",
        "Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=[\"x\",1])": "JSON array of strings",
        "Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=[])": "must not be empty",
        """Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=["x")""": "invalid JSON array",
    }
    for text, message in cases.items():
        error = error_of(text)
        assert message in str(error), (text, str(error))
        assert error.code == "0x80060888"


def test_an_unterminated_string_is_reported_at_its_opening_quote() -> None:
    assert str(error_of("name eq 'O'Brien'")) == "Syntax error at position 16 in '$filter': unterminated string literal"
    assert "position 8" in str(error_of("name eq 'abc"))


def test_an_alias_that_is_not_supplied_is_null() -> None:
    # "If the alias isn't assigned a value, it's assumed to be null."
    # https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview
    assert parse_filter("@p1 ne @p3", {"@p1": "revenue"}) == Compare("ne", Path(("revenue",)), Literal(None))
    error = error_of("Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)", {"@p1": "'name'"})
    assert "PropertyValues must be a JSON array" in str(error)


def test_a_bad_alias_value_is_reported_in_the_alias() -> None:
    assert "Syntax error at position 0 in '@p1'" in str(error_of("name eq @p1", {"@p1": "'x"}))
    assert "can only be a PropertyValues argument" in str(error_of("name eq @p1", {"@p1": '["x"]'}))
    assert "PropertyName must be a string literal" in str(
        error_of("Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)", {"@p1": "name", "@p2": '["x"]'})
    )


def test_unknown_and_unsupported_functions_are_refused() -> None:
    assert str(error_of("tolower(name) eq 'x'")).startswith("An unknown function with name 'tolower' was found.")
    assert "function 'Microsoft.Dynamics.CRM.Between'" in str(
        error_of('Microsoft.Dynamics.CRM.Between(PropertyName=\'revenue\',PropertyValues=["1","2"])')
    )
    assert str(error_of("In(PropertyName='name',PropertyValues=[\"x\"])")).startswith(
        "An unknown function with name 'In' was found."
    )


def test_lambda_operators_are_refused_as_unsupported() -> None:
    error = error_of("Account_Tasks/any(t:t/statecode eq 1)")
    assert "lambda operator 'any'" in str(error) and "not supported" in str(error)
    assert "lambda operator 'all'" in str(error_of("Account_Tasks/all(t:t/statecode eq 1)"))


def test_a_literal_of_the_wrong_type_is_refused_with_both_types() -> None:
    assert str(error_of("numberofemployees eq 'ten'")) == (
        "A binary operator with incompatible types was detected. Found operand types 'Edm.Int32' and 'Edm.String' "
        "for operator kind 'Equal'. (property 'numberofemployees')"
    )
    assert "'Edm.String' and 'Edm.Int32' for operator kind 'LessThan'" in str(error_of("'x' lt numberofemployees"))
    assert "'Edm.Guid' and 'Edm.String'" in str(error_of(f"accountid eq '{A['A1']}'"))
    assert "'Edm.Boolean' and 'Edm.Int32'" in str(error_of("donotemail eq 1"))
    assert "'Edm.Date' and 'Edm.DateTimeOffset'" in str(error_of("closedate eq 2024-01-01T00:00:00Z"))
    assert "'Edm.String' and 'Edm.Decimal'" in str(error_of("name eq revenue"))


def test_a_string_function_on_a_non_string_column_is_refused() -> None:
    assert "No function signature for the function with name 'contains'" in str(
        error_of("contains(numberofemployees,'1')")
    )


def test_an_in_value_that_does_not_fit_the_column_is_refused() -> None:
    error = error_of("""Microsoft.Dynamics.CRM.In(PropertyName='accountid',PropertyValues=["not-a-guid"])""")
    assert str(error) == "The value 'not-a-guid' in PropertyValues is not a valid Edm.Guid for 'accountid'."
    assert "Edm.Int32" in str(
        error_of("""Microsoft.Dynamics.CRM.In(PropertyName='numberofemployees',PropertyValues=["1.5"])""")
    )


def test_an_unknown_property_uses_dataverse_wording_from_the_resolver() -> None:
    error = error_of("nmae eq 'x'")
    assert str(error) == "Could not find a property named 'nmae' on type 'Microsoft.Dynamics.CRM.account'."
    assert error.code == "0x0"
    assert "named 'nope'" in str(error_of("primarycontactid/nope eq 'x'"))
    assert "named 'nmae'" in str(error_of("contains(nmae,'x')"))


def test_deep_nesting_is_refused_without_a_recursion_error() -> None:
    with pytest.raises(ODataError, match="nested more than"):
        parse_filter("(" * 500 + "a eq 1" + ")" * 500)
    with pytest.raises(ODataError, match="nested more than"):
        parse_filter("not " * 500 + "a eq 1")


def test_sql_functions_return_null_for_null_input(db: sqlite3.Connection) -> None:
    row = db.execute(
        "SELECT odata_like(?, NULL), odata_fold(NULL), odata_fold('ÅSS'), odata_like(?, 'Ab')",
        (
            like_pattern_to_regex("a%"),
            like_pattern_to_regex("a%"),
        ),
    ).fetchone()
    assert row == (None, None, "åss", 1)
