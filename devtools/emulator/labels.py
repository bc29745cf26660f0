"""Formatted values (`<property>@OData.Community.Display.V1.FormattedValue`) as a real org returns them.

Learn ("Select columns using OData", "Formatted values") lists what gets one: the labels of choice, yes/no, status and
status reason columns, currency values with their symbol, and dates in the user's time zone; its examples show
`$20,000.00`, `9,500` and `4/7/2023 2:59 PM`. The emulator's user works in UTC with the en-US format and a US dollar
base currency. Labels are the default (unlocalized, uncustomized) ones from the table reference pages
(learn.microsoft.com/power-apps/developer/data-platform/reference/entities/<table>) and
../shared/reference/dataverse-web-api.md section 11; a choice value without a known label is formatted as its number.
Strings and GUIDs have no formatted value; lookups get the related row's primary name elsewhere (rows.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

__all__ = ["formatted"]

_ACTIVE = {"statecode": {0: "Active", 1: "Inactive"}, "statuscode": {1: "Active", 2: "Inactive"}}
_ACTIVITY_STATE = {0: "Open", 1: "Completed", 2: "Canceled"}
_PRIORITY = {0: "Low", 1: "Normal", 2: "High"}
_INDUSTRY = dict(
    enumerate(
        (
            "Accounting",
            "Agriculture and Non-petrol Natural Resource Extraction",
            "Broadcasting Printing and Publishing",
            "Brokers",
            "Building Supply Retail",
            "Business Services",
            "Consulting",
            "Consumer Services",
            "Design, Direction and Creative Management",
            "Distributors, Dispatchers and Processors",
            "Doctor's Offices and Clinics",
            "Durable Manufacturing",
            "Eating and Drinking Places",
            "Entertainment Retail",
            "Equipment Rental and Leasing",
            "Financial",
            "Food and Tobacco Processing",
            "Inbound Capital Intensive Processing",
            "Inbound Repair and Services",
            "Insurance",
            "Legal Services",
            "Non-Durable Merchandise Retail",
            "Outbound Consumer Service",
            "Petrochemical Extraction and Distribution",
            "Service Retail",
            "SIG Affiliations",
            "Social Services",
            "Special Outbound Trade Contractors",
            "Specialty Realty",
            "Transportation",
            "Utility Creation and Distribution",
            "Vehicle Retail",
            "Wholesale",
        ),
        start=1,
    )
)

# (table, column) → {value: label}
_CHOICES: dict[tuple[str, str], dict[int, str]] = {
    **{("account", column): labels for column, labels in _ACTIVE.items()},
    **{("contact", column): labels for column, labels in _ACTIVE.items()},
    ("account", "industrycode"): _INDUSTRY,
    ("lead", "statecode"): {0: "Open", 1: "Qualified", 2: "Disqualified"},
    ("lead", "statuscode"): {
        1: "New",
        2: "Contacted",
        3: "Qualified",
        4: "Lost",
        5: "Cannot Contact",
        6: "No Longer Interested",
        7: "Canceled",
    },
    ("lead", "leadqualitycode"): {1: "Hot", 2: "Warm", 3: "Cold"},
    ("lead", "leadsourcecode"): {
        1: "Advertisement",
        2: "Employee Referral",
        3: "External Referral",
        4: "Partner",
        5: "Public Relations",
        6: "Seminar",
        7: "Trade Show",
        8: "Web",
        9: "Word of Mouth",
        10: "Other",
    },
    ("opportunity", "statecode"): {0: "Open", 1: "Won", 2: "Lost"},
    ("opportunity", "statuscode"): {1: "In Progress", 2: "On Hold", 3: "Won", 4: "Canceled", 5: "Out-Sold"},
    ("task", "statecode"): _ACTIVITY_STATE,
    ("task", "statuscode"): {
        2: "Not Started",
        3: "In Progress",
        4: "Waiting on someone else",
        5: "Completed",
        6: "Canceled",
        7: "Deferred",
    },
    ("phonecall", "statecode"): _ACTIVITY_STATE,
    ("phonecall", "statuscode"): {1: "Open", 2: "Made", 3: "Canceled", 4: "Received"},
    ("email", "statecode"): _ACTIVITY_STATE,
    ("email", "statuscode"): {
        1: "Draft",
        2: "Completed",
        3: "Sent",
        4: "Received",
        5: "Canceled",
        6: "Pending Send",
        7: "Sending",
        8: "Failed",
    },
    ("appointment", "statecode"): {**_ACTIVITY_STATE, 3: "Scheduled"},
    ("appointment", "statuscode"): {
        1: "Free",
        2: "Tentative",
        3: "Completed",
        4: "Canceled",
        5: "Busy",
        6: "Out of Office",
    },
    **{(activity, "prioritycode"): _PRIORITY for activity in ("task", "phonecall", "email", "appointment")},
    ("workflow", "statecode"): {0: "Draft", 1: "Activated", 2: "Suspended"},
    ("workflow", "statuscode"): {1: "Draft", 2: "Activated", 3: "CompanyDLPViolation"},
    ("asyncoperation", "statecode"): {0: "Ready", 1: "Suspended", 2: "Locked", 3: "Completed"},
    ("asyncoperation", "statuscode"): {
        0: "Waiting For Resources",
        10: "Waiting",
        20: "In Progress",
        21: "Pausing",
        22: "Canceling",
        30: "Succeeded",
        31: "Failed",
        32: "Canceled",
    },
    ("msdyn_predictivescore", "msdyn_grade"): {0: "A", 1: "B", 2: "C", 3: "D"},
    ("msdyn_predictivescore", "msdyn_scoretrend"): {
        0: "Improving",
        1: "Steady",
        2: "Declining",
        3: "Not enough info",
    },
    ("msdynmkt_contactpointconsent4", "msdynmkt_contactpointtype"): {
        534120000: "Email",
        534120001: "Text Message",
        534120002: "Custom",
        534120003: "Voice",
    },
    ("msdynmkt_contactpointconsent4", "msdynmkt_value"): {
        534120000: "Not Set",
        534120001: "Opted In",
        534120002: "Opted Out",
    },
}

_ALLOW = ("Do Not Allow", "Allow")
_DIRECTION = ("Outgoing", "Incoming")
# (table, column) → (true label, false label); every other yes/no column is labelled Yes / No.
_BOOLEANS: dict[tuple[str, str], tuple[str, str]] = {
    **{("contact", column): _ALLOW for column in ("donotbulkemail", "donotemail", "donotphone")},
    ("lead", "donotbulkemail"): _ALLOW,
    ("phonecall", "directioncode"): _DIRECTION,
    ("email", "directioncode"): _DIRECTION,
}


def formatted(table: str, column: str, kind: str, value: Any) -> str | None:
    """The formatted value of a stored (non-null) column value, or None for a type that has none."""
    if kind == "bool":
        true, false = _BOOLEANS.get((table, column), ("Yes", "No"))
        return true if value else false
    if kind == "choice":
        return _CHOICES.get((table, column), {}).get(int(value), str(value))
    if kind == "money":
        amount = float(value)
        return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"
    if kind == "decimal":
        return f"{float(value):,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "datetime":
        return _date_time(datetime.fromisoformat(str(value)))
    if kind == "date":
        return _date(date.fromisoformat(str(value)[:10]))
    return None


def _date(day: date) -> str:
    """`4/7/2023`: en-US short date, no leading zeros."""
    return f"{day.month}/{day.day}/{day.year}"


def _date_time(moment: datetime) -> str:
    """`4/7/2023 2:59 PM`: en-US short date and time, as in Learn's example (here in UTC)."""
    hour = moment.hour % 12 or 12
    return f"{_date(moment)} {hour}:{moment.minute:02d} {'PM' if moment.hour >= 12 else 'AM'}"
