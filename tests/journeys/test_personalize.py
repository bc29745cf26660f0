"""Golden tests for Handlebars personalization: account name and id, if/else, escaping, missing values, relations."""

from __future__ import annotations

import pytest

from journeys.personalize import TemplateError, compile_template, render
from scoring.records import Account, Contact

ACME = Account("a1", attributes={"name": "Acme & Sons"})
ANNA = Contact("c1", "a1", attributes={"firstname": "Anna", "fullname": "Anna Smit"})


def test_account_name_and_id() -> None:
    template = compile_template(
        "Hi {{contact.firstname}} of {{contact.contact_account_parentcustomerid.name}} ({{contact.parentcustomerid}})"
    )
    assert render(template, ANNA, ACME) == "Hi Anna of Acme &amp; Sons (a1)"


def test_if_else_unless_each() -> None:
    template = compile_template(
        "{{#if contact.contact_account_parentcustomerid.name}}At {{contact.contact_account_parentcustomerid.name}}"
        "{{else}}Welcome{{/if}}{{#unless contact.vip}}!{{/unless}}{{#each contact.tags}}[{{this}}]{{/each}}"
    )
    assert render(template, ANNA, ACME) == "At Acme &amp; Sons!"
    tagged = Contact("c2", None, attributes={"vip": True, "tags": ["a", "b"]})
    assert render(template, tagged, None) == "Welcome[a][b]"


def test_escaping_script_and_ampersand() -> None:
    template = compile_template("<p>{{contact.firstname}}</p>")
    evil = Contact("c3", None, attributes={"firstname": "<script>alert('x')</script> & co"})
    assert render(template, evil, None) == "<p>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co</p>"


def test_missing_values_render_empty() -> None:
    template = compile_template("[{{contact.nickname}}][{{contact.contact_account_parentcustomerid.name}}]")
    assert render(template, ANNA, None) == "[][]"
    assert render(template, Contact("c4"), Account("a9")) == "[][]"


def test_typed_columns_in_context() -> None:
    template = compile_template("{{contact.contactid}}/{{contact.contact_account_parentcustomerid.accountid}}")
    assert render(template, ANNA, ACME) == "c1/a1"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{contact.contact_lead_parent.name}}", "unknown relation 'contact_lead_parent'"),
        ("{{contact.contact_account_parentcustomerid.owner.name}}", "goes past"),
        ("{{account.name}}", "unknown variable"),
        ("{{#if contact.x}}open", "does not compile"),
    ],
)
def test_bad_templates_fail_at_compile(source: str, words: str) -> None:
    with pytest.raises(TemplateError, match=words):
        compile_template(source)


def test_compiled_once_and_columns_reported() -> None:
    source = "{{contact.firstname}} {{contact.contact_account_parentcustomerid.name}}"
    template = compile_template(source)
    assert compile_template(source) is template
    assert template.contact_columns == {"firstname"} and template.account_columns == {"name"}


def test_plain_text_rendering_for_subjects() -> None:
    template = compile_template("Call {{contact.contact_account_parentcustomerid.name}}")
    assert render(template, ANNA, ACME, html=False) == "Call Acme & Sons"
