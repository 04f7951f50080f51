"""Instructions and mail templates from process definitions run in Jinja's sandbox."""

from __future__ import annotations

import copy
import time

import pytest
from jinja2.sandbox import SandboxedEnvironment

from engine import templates
from engine.templates import (
    TemplateRenderError,
    render_instructions,
    render_mail,
    template_errors,
)

DATA = {
    "customer": {"name": "Ada <b>Lovelace</b>", "email": "ada@example.org"},
    "reference": "C-2026-0042",
    "items": [{"name": "kettle", "price": 30}, {"name": "toaster", "price": 45}],
    "amount": 75.5,
    "due": "2026-12-24T14:30:00+00:00",
}


def test_instructions_render_task_data():
    source = (
        "Complaint {{ reference }} from {{ customer.name|upper }}\n"
        "{% for item in items %}- {{ item.name }}: {{ '%.2f'|format(item.price) }}\n{% endfor %}"
        "{% if amount > 50 %}Escalate by {{ due[:10] }}{% endif %}"
    )
    text = render_mail(source, DATA)
    assert text == (
        "Complaint C-2026-0042 from ADA <B>LOVELACE</B>\n"
        "- kettle: 30.00\n- toaster: 45.00\n"
        "Escalate by 2026-12-24"
    )


def test_instructions_escape_html_but_mail_does_not():
    source = "<p>Call {{ customer.name }} about {{ note }}</p>"
    data = {**DATA, "note": "<script>alert('x')</script>"}
    html = render_instructions(source, data)
    assert html == (
        "<p>Call Ada &lt;b&gt;Lovelace&lt;/b&gt; about "
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</p>"
    )
    assert render_mail("{{ note }}", data) == "<script>alert('x')</script>"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ range.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ ''|attr('__class__') }}",
        "{{ customer.__class__ }}",
        "{{ '{0.__class__}'.format(reference) }}",
        "{{ items.append(1) }}",
        "{{ customer.update(name='x') }}",
        "{{ self._TemplateReference__context }}",
        "{{ namespace()._Namespace__attrs }}",
        "{{ joiner.__init__.__globals__['__builtins__'] }}",
    ],
)
def test_unsafe_access_is_refused(source):
    data = copy.deepcopy(DATA)
    for render in (render_instructions, render_mail):
        with pytest.raises(TemplateRenderError) as caught:
            render(source, data)
        assert "template tried something unsafe, which is refused" in str(caught.value)
    assert data == DATA


def test_a_missing_variable_is_an_error_not_an_empty_string():
    with pytest.raises(TemplateRenderError, match="'customer_nmae' is undefined"):
        render_mail("Dear {{ customer_nmae }}", DATA)
    assert render_mail("{{ missing|default('n/a') }}", DATA) == "n/a"
    assert render_mail("{% if missing is defined %}x{% endif %}", DATA) == ""


def test_template_errors_carry_the_line():
    with pytest.raises(TemplateRenderError) as caught:
        render_instructions("line one\n{% for x in %}\n{% endfor %}", DATA)
    assert caught.value.line == 2
    assert str(caught.value).startswith("line 2: template syntax error")
    with pytest.raises(TemplateRenderError) as caught:
        render_mail("a\nb\n{{ amount / 0 }}", DATA)
    assert caught.value.line == 3
    assert "ZeroDivisionError" in str(caught.value)


def test_template_errors_lists_problems_for_deploy_checks():
    assert template_errors("Hello {{ customer.name }}") == []
    problems = template_errors("{% if %}")
    assert len(problems) == 1 and problems[0][0] == 1


def test_includes_and_imports_are_not_possible():
    for source in ("{% include 'other.html' %}", "{% import 'macros.html' as m %}",
                   "{% extends 'base.html' %}"):
        with pytest.raises(TemplateRenderError):
            render_instructions(source, DATA)


def test_endless_template_loops_are_stopped_by_the_time_limit():
    source = (
        "{% for a in range(100000) %}{% for b in range(100000) %}"
        "{% endfor %}{% endfor %}"
    )
    started = time.monotonic()
    with pytest.raises(TemplateRenderError, match="template ran longer than 0.2 s"):
        render_instructions(source, DATA, time_limit=0.2)
    assert time.monotonic() - started < 1.5


def test_endless_loops_over_data_and_recursive_macros_are_stopped():
    data = {"rows": list(range(1000))}
    nested = (
        "{% for a in rows %}{% for b in rows %}{% for c in rows %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateRenderError, match="ran longer than 0.2 s"):
        render_mail(nested, data, time_limit=0.2)
    macro = (
        "{% macro grow(n) %}{% if n < 60 %}{{ grow(n + 1) }}{{ grow(n + 1) }}{% endif %}"
        "{% endmacro %}{{ grow(0) }}"
    )
    with pytest.raises(TemplateRenderError, match="ran longer than 0.2 s"):
        render_mail(macro, data, time_limit=0.2)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10**8 }}",
        "{{ [0] * 10**8 }}",
        "{{ 2 ** 100000000 }}",  # (jinja: ** is left-associative)
        "{{ 'x'|center(10**8) }}",
        "{{ 'x'|indent(10**8) }}",
        "{{ 'x'.ljust(10**8) }}",
        "{{ '%999999999d'|format(1) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ range(10**9)|list }}",
        "{{ items|slice(10**9)|list }}",
        "{{ items|tojson(indent=10**8) }}",
        "{{ items|tojson(10**8) }}",
        "{{ (['a' * 1000000] * 3)|join(' ') }}",
        "{{ (['a' * 1000000] * 3)|map('upper')|join }}",
        "{{ ' '.join((['a' * 1000000] * 3)|map('upper')) }}",
        "{{ ('x' * 1000)|replace('', 'y' * 1000) }}",
    ],
)
def test_huge_outputs_are_refused(source):
    started = time.monotonic()
    with pytest.raises(TemplateRenderError):
        render_mail(source, DATA)
    assert time.monotonic() - started < 0.5


def test_output_length_is_limited(monkeypatch):
    monkeypatch.setattr(templates, "MAX_OUTPUT", 1000)
    with pytest.raises(TemplateRenderError, match="longer than 1000 characters"):
        render_mail("{% for i in range(200) %}{{ reference }}{% endfor %}", DATA)
    assert len(render_mail("{% for i in range(20) %}{{ reference }}{% endfor %}", DATA)) == 220


def test_compiled_templates_are_cached_by_source():
    templates.clear_cache()
    for _ in range(20):
        render_instructions("Hello {{ customer.name }}", DATA)
    info = templates._compiled.cache_info()
    assert info.misses == 1
    assert info.hits == 19


def test_templates_use_a_sandboxed_environment():
    assert isinstance(templates._HTML, SandboxedEnvironment)
    assert isinstance(templates._TEXT, SandboxedEnvironment)
    assert templates._HTML.autoescape is True
    assert templates._TEXT.autoescape is False
